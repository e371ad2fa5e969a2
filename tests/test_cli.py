"""The CLI's top level: help, version."""

from __future__ import annotations

from conftest import run_lmforge


def test_help_lists_verbs():
    r = run_lmforge("--help")
    assert r.returncode == 0
    assert "VERB" in r.stdout


def test_version():
    r = run_lmforge("--version")
    assert r.returncode == 0 and "lmforge" in r.stdout
