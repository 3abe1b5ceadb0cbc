"""syncd-xero: the Xero Contacts connector for syncd, and an emulator of the Xero API."""

__version__ = "0.1.0"
