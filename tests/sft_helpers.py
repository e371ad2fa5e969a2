"""Helpers for the SFT tests: tiny conversations, the flags every SFT run shares, subprocesses.

The parent run is `test_pretrain_helpers.tiny_run` (a 12-step tiny LLaMA whose
tokenizer has lmforge's role tokens); the conversations use the words of its
corpus, so a few dozen steps visibly lower the loss.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from test_pretrain_helpers import NAMES, PLACES

KILLABLE = Path(__file__).with_name("_killable.py")

# Flags every SFT test run shares: rows of the parent's whole context (64), one thread,
# fp32 (bitwise-reproducible), a metrics line per step.
SFT = [
    "--batch-size", "4", "--seq-len", "64", "--warmup", "2", "--lr", "3e-3",
    "--threads", "1", "--dtype", "fp32", "--log-every", "1", "--quiet",
]  # fmt: skip

# Each name always goes to the same place: the answers are learnable from the question.
PLACE_OF = {name: PLACES[i % len(PLACES)] for i, name in enumerate(NAMES)}


def chat_records(n: int = 20, seed: int = 0) -> list[dict]:
    """`n` short {"messages": [...]} records (some with a system turn, some two exchanges)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(NAMES)
        msgs = [
            {"role": "user", "content": f"Where did {name} go?"},
            {"role": "assistant", "content": f"{name} went to {PLACE_OF[name]}."},
        ]
        if i % 5 == 1:
            msgs.insert(0, {"role": "system", "content": "Be brief."})
        if i % 4 == 2:
            k = rng.randint(2, 9)
            msgs += [
                {"role": "user", "content": "And then?"},
                {"role": "assistant", "content": f"{name} saw {k} cats."},
            ]
        out.append({"messages": msgs, "task": "places"})
    return out


def short_records(n: int = 24, seed: int = 0) -> list[dict]:
    """Very short conversations (8-30 tokens), so that one 65-token row packs several."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        msgs = [{"role": "user", "content": name}, {"role": "assistant", "content": place}]
        if i % 3 == 0:
            msgs.insert(0, {"role": "system", "content": "Be brief."})
        if i % 4 == 0:
            msgs += [
                {"role": "user", "content": "And then?"},
                {"role": "assistant", "content": f"{rng.randint(2, 9)} cats"},
            ]
        out.append({"messages": msgs})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sft_proc(*args, timeout: float = 180, **kill) -> subprocess.CompletedProcess:
    """`lmforge sft ARGS` in a subprocess, through tests/_killable.py when a kill is asked
    (`after_step=N`, `in_checkpoint=N`, `signal_after_step=N`: its switches)."""
    cmd = [sys.executable, "-m", "lmforge"]
    if kill:
        cmd = [sys.executable, str(KILLABLE)]
        for k, v in kill.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
        cmd.append("--")
    return subprocess.run(
        [*cmd, "sft", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def train_losses(run: Path) -> list[tuple[int, float]]:
    """(step, loss) of every training line of RUN/metrics.jsonl."""
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (to compare before and after)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def make_roleless_run(root: Path, docs: list[str]) -> Path:
    """root/run: a tiny LLaMA pretrained (2 steps) with an imported-style tokenizer that has
    no chat role tokens (byte-level BPE, only <|endoftext|>, as imported from GPT-2)."""
    from test_chat_template import _gpt2_like

    from lmforge.cli.main import main
    from lmforge.config import build_config
    from lmforge.data.prepare import PrepareConfig, prepare

    tok = _gpt2_like(docs=docs)
    tok.save(root / "tok")
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    prepare(
        build_config(
            PrepareConfig,
            overrides={
                "tokenizer": str(root / "tok"),
                "input": [str(root / "corpus.txt")],
                "out": str(root / "shards"),
            },
        )
    )
    try:
        main(["pretrain", "--arch", "llama", "--preset", "tiny", "--seq-len", "32",
              "--batch-size", "2", "--max-steps", "2", "--warmup", "1", "--threads", "1",
              "--dtype", "fp32", "--samples", "0", "--quiet",
              "--data", str(root / "shards"), "--out", str(root / "run")])  # fmt: skip
    except SystemExit as e:
        assert e.code == 0, e.code
    return root / "run"
