"""Smoke runs of the training benchmarks (slow: each starts torch and trains a little)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench(*args: str, timeout: float = 300) -> str:
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.slow
def test_gpu_mfu_smoke_on_cpu():
    out = bench(BENCH / "gpu_mfu.py", "--device", "cpu", "--tiny", "--steps", "2", "--warmup",
                "1", "--windows", "1")  # fmt: skip
    assert "tiny GPT" in out and "tok/s" in out


@pytest.mark.slow
def test_train_cpu_quick():
    out = bench(BENCH / "train_cpu.py", "--quick", "--no-compile", "--threads", "1")
    assert "HF LlamaForCausalLM" in out and "floor: matmuls + attention only" in out
    assert "ceiling in fp32" in out
    assert out.strip().splitlines()[-1].startswith("ratio lmforge / HF fp32")


@pytest.mark.slow
def test_shakespeare_char_reaches_an_easy_target(shared_data):
    out = bench(BENCH / "shakespeare_char.py", "--target", "3.0", "--max-steps", "60",
                "--eval-every", "10", "--threads", "1")  # fmt: skip
    last = out.strip().splitlines()[-1]
    assert last.startswith("ratio baseline / best"), out


@pytest.mark.slow
def test_generate_quick():
    out = bench(BENCH / "generate.py", "--quick", "--threads", "1")
    last = out.strip().splitlines()[-1]
    assert last.startswith("ratio (lmforge / transformers generate"), out
    assert "ceiling" in last and "| yes" in out  # same tokens as transformers


@pytest.mark.slow
def test_generate_n_quick():
    out = bench(BENCH / "generate_n.py", "--quick", "--threads", "1")
    last = out.strip().splitlines()[-1]
    assert last.startswith("ratio (lmforge n=8 shared prefill / transformers"), out
    assert "| yes" in out  # both made 8 x 16 tokens


@pytest.mark.slow
def test_memory_rss_quick():
    out = bench(BENCH / "memory_rss.py", "--quick")
    assert "lmforge data prepare" in out and "tokenizers BpeTrainer" in out
    assert out.strip().splitlines()[-1].startswith("ratio to the 1024 MB target")
