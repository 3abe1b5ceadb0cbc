"""syncd connector for Salesfire customer lists: write-only, signed pushes, and an emulator."""

__version__ = "0.1.0"
