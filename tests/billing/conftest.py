"""Billing tests run the app on moto in-process and fakeredis, against a
real localstripe server (tests/billing_support.py)."""
from tests.billing_support import billed  # noqa: F401 - a fixture
