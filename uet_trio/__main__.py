"""``python -m uet_trio``: the same command as ``uet``."""

from uet_trio_cli import entry

entry()
