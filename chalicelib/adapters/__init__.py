"""Thin adapters over S3, DynamoDB and Redis: no decisions live here."""
