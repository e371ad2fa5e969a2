"""The CLI's error contract: one line, exit code 2, no traceback unless --debug."""

from __future__ import annotations

import subprocess
import sys


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "lmforge", *args], capture_output=True, text=True, **kw
    )


def test_help_lists_verbs():
    r = run("--help")
    assert r.returncode == 0
    assert "VERB" in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0 and "lmforge" in r.stdout
