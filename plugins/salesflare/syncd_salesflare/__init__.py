"""syncd connector for Salesflare contacts, with an emulator of the Salesflare API it uses."""

from syncd_salesflare.connector import SalesflareConnector

__all__ = ["SalesflareConnector"]
