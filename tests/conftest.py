"""Shared fixtures: the reference data folder and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests use tiny models, for which one thread is fastest and deterministic; set
# before torch is imported so that CLI subprocesses inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts on one torch thread, whatever an earlier test set (a training run's
    --threads): tiny models gain nothing from threads, and on a busy 2-core machine they
    spin-wait."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: a user's fresh clone has no ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_lmforge(
    *args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 300
):
    """Run `python -m lmforge ARGS` in a subprocess; returns CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "lmforge", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=input,
        timeout=timeout,
    )


def run_lmforge_inprocess(*args: str):
    """`lmforge ARGS` run in this process (no interpreter start-up per call), as a
    CompletedProcess so that assert_clean_error applies."""
    import contextlib
    import io

    from lmforge.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code or 0
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def assert_clean_error(result, *needles: str) -> None:
    """The error contract: exit 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


@pytest.fixture(scope="session")
def quick_base(tmp_path_factory):
    """The tiny base (world, tokenizer, shards, pretrain, SFT) of `lmforge experiments --quick`,
    built once per session (~40 s) for every experiment's end-to-end test."""
    from lmforge.experiments.claims import NEEDS_SFT
    from lmforge.experiments.claims_base import ensure_base

    return ensure_base(tmp_path_factory.mktemp("claims"), NEEDS_SFT, quick=True, given=None)
