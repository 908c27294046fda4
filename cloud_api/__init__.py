"""Cloud service of the cashierless store: check-in, visits, settlement, receipts (issue #5)."""

__version__ = "0.1.0"
