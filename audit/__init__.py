"""etd-audit: predict where Graph-based mail remediation will fail in a Microsoft 365 tenant."""

__version__ = "0.1.0"
