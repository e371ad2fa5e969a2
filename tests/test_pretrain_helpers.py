"""Helpers for the pretrain/sample tests: a tiny corpus, tokenizer and prepared shards.

Built with `tokenizers` directly and B's `prepare`, so these tests depend only on
the shared Tokenizer type and the data pipeline, not on the tokenizer trainers.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_data_helpers import make_bpe_tokenizer

from lmforge.config import build_config
from lmforge.data.prepare import PrepareConfig, prepare
from lmforge.tokenizers import Tokenizer

NAMES = ["Anna", "Boris", "Clara", "Dmitri", "Elena", "Fyodor"]
PLACES = ["the river", "the market", "the old mill", "the forest", "the station"]

# Flags every test run shares: tiny model, short windows, one thread (bitwise-reproducible).
TINY = [
    "--arch", "llama", "--preset", "tiny", "--seq-len", "32", "--batch-size", "4",
    "--warmup", "3", "--threads", "1", "--dtype", "fp32", "--samples", "1",
    "--sample-tokens", "8", "--log-every", "1", "--quiet",
]  # fmt: skip


def make_corpus(n_docs: int = 300, seed: int = 0) -> list[str]:
    """Short templated stories: learnable in a few dozen steps."""
    rng = random.Random(seed)
    return [
        " ".join(
            f"{rng.choice(NAMES)} went to {rng.choice(PLACES)} and saw {rng.randint(2, 9)} cats."
            for _ in range(rng.randint(2, 5))
        )
        for _ in range(n_docs)
    ]


def make_tokenizer(folder: Path, docs: list[str], vocab_size: int = 320) -> Tokenizer:
    """A byte-level BPE trained on `docs`, with lmforge's special tokens at ids 0.."""
    return make_bpe_tokenizer(folder, vocab_size, docs)


def make_shards(root: Path, vocab_size: int = 320, seed: int = 0) -> Path:
    """root/shards: a prepared data folder of the tiny corpus."""
    root.mkdir(parents=True, exist_ok=True)
    docs = make_corpus(seed=seed)
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    make_tokenizer(root / "tok", docs, vocab_size)
    cfg = build_config(
        PrepareConfig,
        overrides={
            "tokenizer": str(root / "tok"),
            "input": [str(root / "corpus.txt")],
            "out": str(root / "shards"),
        },
    )
    prepare(cfg)
    return root / "shards"


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("tiny_data"))


RUN_STEPS = ["--max-steps", "12", "--save-every", "4", "--eval-every", "6", "--eval-batches", "2"]


def pretrain_proc(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """`python -m lmforge pretrain ARGS` in a subprocess (optionally with test-hook env vars)."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lmforge", "pretrain", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cli(capsys, *args: str):
    """`lmforge ARGS` in this process (fast: no interpreter start); a CompletedProcess."""
    import subprocess

    from lmforge.cli.main import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, e.value.code, out.out, out.err)


def weights(path: Path) -> dict:
    """The tensors of a model.safetensors (a checkpoint folder or the file)."""
    from safetensors.torch import load_file

    p = path / "model.safetensors" if path.is_dir() else path
    return load_file(str(p))


def assert_same_weights(a: Path, b: Path) -> None:
    """Bitwise equality of every tensor, and of the files themselves (sorted headers)."""
    import torch

    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    fa = a / "model.safetensors" if a.is_dir() else a
    fb = b / "model.safetensors" if b.is_dir() else b
    assert fa.read_bytes() == fb.read_bytes()


@pytest.fixture(scope="session")
def tiny_run(tiny_shards, tmp_path_factory) -> Path:
    """An uninterrupted 12-step run (checkpoints at 4, 8, 12)."""
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    r = pretrain_proc(*TINY, *RUN_STEPS, "--data", tiny_shards, "--out", out)
    assert r.returncode == 0, r.stderr
    return out
