"""syncd connector for Woodpecker.co prospects, and an emulator of the part of its API it uses."""

__version__ = "0.1.0"
