"""C2 (b): does splitting digits fix arithmetic? Two tiny GPTs, one per tokenizer, trained
with the user's own verbs on the same addition problems for the same number of steps,
then scored by exact match of their greedy answers to held-out problems. The budget is a
number of steps (wall time would depend on how loaded the machine is), capped in time.

Each tokenizer (`lmforge tokenizer train`, byte-level BPE, with and without
`--split-digits`) learns its merges on the world's text plus the training problems, as a
general tokenizer meets numbers; `lmforge data prepare --txt-docs line` makes every
problem one document (`doc EOS doc EOS ...`), and `lmforge pretrain` trains on that stream.
A held-out problem 'a+b=' is prompted after an EOS, as every training problem starts, and
the answer is the greedy continuation up to the next EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..eval.tasks_stats import Accuracy
from .claims import ClaimContext
from .claims_tokenizers_measure import addition_problems, split_problem

EVAL_BATCH = 256  # prompts per generate call


@dataclass(frozen=True)
class ArithSettings:
    max_operand: int  # a, b in 0..max_operand
    test: int  # held-out problems scored
    vocab: int  # both tokenizers' vocab_size
    train_s: float  # pretrain wall-time cap per model (a loaded machine stops here)
    max_steps: int  # pretrain steps per model: the budget both models get
    d_model: int


def write_problems(out: Path, s: ArithSettings, seed: int) -> tuple[Path, list[str]]:
    """All problems shuffled; the first `test` held out, the rest to add_train.txt."""
    rows = addition_problems(s.max_operand, seed)
    test, train = rows[: s.test], rows[s.test :]
    path = out / "add_train.txt"
    path.write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "add_test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    return path, test


def train_tokenizers(ctx: ClaimContext, texts: list[Path], vocab: int) -> dict[str, Path]:
    """BPE and BPE + --split-digits, same inputs and vocab_size."""
    out = {}
    for name, extra in (("bpe", []), ("bpe+digits", ["--split-digits"])):
        folder = ctx.out / f"tok_{name.replace('+', '_')}"
        argv = ["tokenizer", "train", "--kind", "bpe", "--vocab-size", str(vocab), *extra,
                "--input", *map(str, texts), "--out", str(folder)]  # fmt: skip
        ctx.verb(argv, f"tokenizer_{name.replace('+', '_')}")
        out[name] = folder
    return out


def train_model(ctx: ClaimContext, tok: Path, problems: Path, s: ArithSettings, tag: str) -> Path:
    """Shards of the problems, then one tiny GPT pretrained on them for `s.max_steps` steps."""
    shards, run = ctx.out / f"shards_{tag}", ctx.out / f"run_{tag}"
    ctx.verb(["data", "prepare", "--tokenizer", str(tok), "--input", str(problems),
              "--txt-docs", "line", "--val-fraction", "0.05", "--out", str(shards),
              "--seed", str(ctx.seed)], f"prepare_{tag}")  # fmt: skip
    ctx.verb([
        "pretrain", "--arch", "gpt", "--preset", "tiny", "--model.d-model", str(s.d_model),
        "--model.dropout", "0", "--data", str(shards), "--out", str(run),
        "--seq-len", "64", "--batch-size", "32", "--lr", "3e-3", "--warmup", "50",
        "--max-steps", str(s.max_steps), "--max-time", str(s.train_s), "--eval-every", "0",
        "--save-every", "0", "--samples", "0", "--dtype", "fp32", "--seed", str(ctx.seed),
        *ctx.thread_flags(),
    ], f"pretrain_{tag}")  # fmt: skip
    return run


def exact_match(run: Path, problems: list[str]) -> tuple[Accuracy, list[tuple[str, str]], int]:
    """Greedy answers of the run's model to every 'a+b=' of `problems`, matched exactly;
    returns the accuracy, the first few (problem, answer given) pairs and the steps trained."""
    from ..inference.engine import generate_full
    from ..inference.sampling import SamplingConfig
    from ..runs import load_run

    loaded = load_run(run, need="decoder")
    tok = loaded.tokenizer
    cfg = SamplingConfig(max_new_tokens=8, temperature=0.0, stop_token_ids=[tok.eos_id])
    correct, shown = 0, []
    for lo in range(0, len(problems), EVAL_BATCH):
        batch = [split_problem(p) for p in problems[lo : lo + EVAL_BATCH]]
        prompts = [[tok.eos_id, *tok.encode(head)] for head, _ in batch]
        gens = generate_full(loaded.model, prompts, cfg, pad_id=tok.eos_id)
        for (head, answer), g in zip(batch, gens):
            said = tok.decode(g.tokens).strip()
            correct += said == answer
            if len(shown) < 6:
                shown.append((head + answer, said))
    return Accuracy(correct, len(problems)), shown, loaded.step
