"""Moved to :mod:`tests.support.servers` (kept so existing imports keep working)."""

from tests.support.servers import Switch, serve

__all__ = ["Switch", "serve"]
