"""`make bench`: see README.md here."""
