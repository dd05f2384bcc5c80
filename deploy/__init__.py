"""Packaging and operations tooling (not shipped in the Lambda zip)."""
