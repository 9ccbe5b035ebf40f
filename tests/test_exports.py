"""The public face of uet_trio: every exported name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import uet_trio


def test_every_exported_name_resolves() -> None:
    for name in uet_trio.__all__:
        assert getattr(uet_trio, name) is not None, name


def test_validating_does_not_import_trio() -> None:
    """The loader and graph can be used without importing Trio (fast CLI start-up)."""
    code = (
        "import sys, uet_trio.workflow.loader, uet_trio.workflow.graph, uet_trio_cli; "
        "assert 'trio' not in sys.modules, 'trio imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
