"""Peak memory on one huge line: lmforge tokenizer train / data prepare vs `tokenizers`.

    python benchmarks/memory_rss.py [--quick] [--mb 50] [--baseline-src DIR]

Generates a single-line file (random words of a small vocabulary joined by single
spaces, no newline at all; 50 MB, or 5 MB with --quick) and runs, each in its own
process, one thread each:

* `lmforge tokenizer train --kind bpe --vocab-size 4096` on it,
* `lmforge data prepare` of it with that tokenizer,
* the peer: the same byte-level BPE trained by Hugging Face `tokenizers` directly,
  `Tokenizer.train([file], BpeTrainer(...))` (which reads the file line by line).

Peak RSS is each child's own `ru_maxrss` (from `os.wait4`). `--baseline-src DIR`
also runs the two lmforge commands from another source tree (e.g. `git archive
HEAD src | tar -x -C DIR` before a change) for a before/after table. The last
line is the largest lmforge peak over the 1 GB target. Writes
benchmarks/results/memory_rss.json (not with --quick).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import print_table, write_result  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
TARGET_MB = 1024
VOCAB = 4096
WORDS = 2000  # distinct words in the generated line

PEER = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=int(sys.argv[2]), min_frequency=2,
                              show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train([sys.argv[1]], trainer)
print(tok.get_vocab_size())
"""


def make_line(path: Path, size: int, seed: int = 0) -> None:
    """`size` bytes of random words (a WORDS-word vocabulary) joined by single spaces."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(WORDS)]
    with open(path, "w", encoding="ascii") as f:
        written = 0
        while written < size:
            block = " ".join(rng.choices(vocab, k=20_000)) + " "
            f.write(block)
            written += len(block)
        f.truncate(size)
    with open(path, "rb+") as f:  # never end on the separator
        f.seek(size - 1)
        f.write(b"x")


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one child process; fails loudly if it fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def lmforge_runs(src: Path, data: Path, tmp: Path, tag: str) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, "-m", "lmforge"]
    tok, out = tmp / f"tok-{tag}", tmp / f"data-{tag}"
    train = [*base, "tokenizer", "train", "--kind", "bpe", "--vocab-size", str(VOCAB)]
    train += ["--threads", "1", "--input", str(data), "--out", str(tok), "--quiet"]
    prepare = [*base, "data", "prepare", "--tokenizer", str(tok), "--input", str(data)]
    prepare += ["--out", str(out), "--workers", "1", "--quiet"]
    return {"tokenizer train": run_child(train, env), "data prepare": run_child(prepare, env)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 MB instead of 50 MB; no JSON")
    ap.add_argument("--mb", type=float, default=None, help="size of the line in MB")
    ap.add_argument("--baseline-src", type=Path, default=None, help="an older src/ to compare")
    args = ap.parse_args()
    mb = args.mb or (5.0 if args.quick else 50.0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = tmp / "one_line.txt"
        make_line(data, int(mb * 1_000_000))
        rows: list[list] = []
        results: dict[str, dict] = {}
        if args.baseline_src is not None:
            for step, (rss, sec) in lmforge_runs(args.baseline_src, data, tmp, "before").items():
                rows.append([f"lmforge {step} (before)", round(rss), round(sec, 1)])
                results[f"before: lmforge {step}"] = {"peak_rss_mb": rss, "seconds": sec}
        after = lmforge_runs(SRC, data, tmp, "after")
        for step, (rss, sec) in after.items():
            rows.append([f"lmforge {step}", round(rss), round(sec, 1)])
            results[f"lmforge {step}"] = {"peak_rss_mb": rss, "seconds": sec}
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        rss, sec = run_child([sys.executable, "-c", PEER, str(data), str(VOCAB)], env)
        rows.append(["tokenizers BpeTrainer train([file])", round(rss), round(sec, 1)])
        results["tokenizers train([file])"] = {"peak_rss_mb": rss, "seconds": sec}
    print(f"{mb:g} MB in one line, no newline; BPE vocab {VOCAB}, one thread each\n")
    worst = max(rss for rss, _ in after.values())
    print_table(["run", "peak RSS (MB)", "seconds"], rows)
    print(f"ratio to the {TARGET_MB} MB target: {worst / TARGET_MB:.2f} (largest lmforge peak)")
    if not args.quick:
        path = write_result(
            "memory_rss",
            {
                "megabytes": mb,
                "vocab_size": VOCAB,
                "target_mb": TARGET_MB,
                "runs": results,
                "ratio_to_target": worst / TARGET_MB,
            },  # fmt: skip
        )
        print(f"wrote {path}")
    if worst > TARGET_MB:
        sys.exit(f"largest lmforge peak {worst:.0f} MB is over the {TARGET_MB} MB target")


if __name__ == "__main__":
    main()
