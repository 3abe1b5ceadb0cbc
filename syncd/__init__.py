"""syncd: a self-hosted daemon that keeps contacts in sync between SaaS apps."""

from syncd.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"
