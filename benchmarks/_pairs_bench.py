"""What benchmarks/reward.py and benchmarks/dpo.py share: the pairs, the model, the timing.

Both time lmforge's pairwise stages against a TRL 1.12 trainer on the same
tiny LLaMA (`MODEL`, fp32, one initial model exported with
`lmforge.export.hf.export_hf` so that TRL loads identical weights) and the same
synthetic pairs: `POOL` pairs of random token ids (no special ids, so no row
holds padding and every row of a batch is exactly PROMPT + ANSWER tokens), a
prompt of `PROMPT` tokens shared by a chosen and a rejected answer of `ANSWER`
tokens each, and a margin drawn from U[0, 1). The tokenizer (a byte-level BPE
of `VOCAB` ids trained on seeded pseudo-words, built here in a second) only
sets the vocabulary and the pad id: the rows are ids, never text.

Each round r gives both sides the same pairs in the same order: lmforge's
`PreferenceBatches(seed=r)` shuffles the pool, and TRL reads the pool in that
order with `train_sampling_strategy="sequential"`. Steps are timed from one
batch request to the next (lmforge: the batch source; TRL: `on_step_begin`),
so a step is data, forward, backward, optimizer and logging; a rate is pairs
per step over the median step time of all timed steps of all rounds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Nothing may be fetched: the tokenizer, model and data are all local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from _bench import best_time, print_table  # noqa: E402

MODEL = dict(n_layer=6, n_head=4, d_model=256, dropout=0.0, tie_embeddings=True)
VOCAB = 2048
CONTEXT = 128  # the model's block size (rows are PROMPT + ANSWER = 65 tokens)
PROMPT, ANSWER = 32, 33
POOL = 256  # pairs generated; a round reads (warmup + steps + 1) * batch of them


@dataclasses.dataclass
class Setup:
    """Everything both sides share: tokenizer, initial weights, the exported folder, pairs."""

    work: Path
    tok: Any
    mcfg: Any  # lmforge LlamaConfig
    init_state: dict[str, torch.Tensor]
    hf_dir: Path
    pairs: list[Any]  # lmforge PairTokens
    pad: int
    load_start: list[float]  # the load averages when the benchmark started


@dataclasses.dataclass
class StepLog:
    """Per optimizer step: its duration, the process's CPU time in it, its loss.

    `seconds[k]` is step k's duration, known for every step but the last (a step
    ends where the next one asks for its batch), so `seconds` is one shorter;
    `cpu[k]` the CPU seconds of all the process's threads in that time (on a busy
    machine wall time grows while CPU time stays: it tells load from work); the
    loss is the mean over the step's pairs.
    """

    seconds: list[float] = dataclasses.field(default_factory=list)
    losses: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)


def stamp() -> tuple[float, float]:
    """(wall, process CPU) seconds now."""
    return time.perf_counter(), time.process_time()


def durations(stamps: list[tuple[float, float]], n: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of the first `n` steps from their start stamps."""
    wall = [stamps[k + 1][0] - stamps[k][0] for k in range(n)]
    cpu = [stamps[k + 1][1] - stamps[k][1] for k in range(n)]
    return wall, cpu


# -- set-up -------------------------------------------------------------------------------
def quiet() -> None:
    """Silence lmforge's progress lines and transformers/TRL/datasets warnings and bars."""
    import datasets
    import transformers

    from lmforge.common import set_quiet

    set_quiet(True)

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)
    datasets.disable_progress_bars()


def bench_tokenizer(work: Path):
    """A byte-level BPE of VOCAB ids trained on seeded pseudo-words (about a second)."""
    from lmforge.tokenizers import TokenizerConfig, train_tokenizer

    rng = random.Random(0)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [1 / (i + 1) for i in range(len(letters))]  # Zipf-like letters: real merges
    words = ["".join(rng.choices(letters, weights, k=rng.randint(2, 8))) for _ in range(20_000)]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(20_000)))
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=VOCAB, threads=1), [corpus])


def random_pairs(vocab: int, n: int, seed: int = 0) -> list[Any]:
    """`n` PairTokens of random non-special ids: PROMPT + ANSWER tokens a side, margin U[0, 1)."""
    from lmforge.data.preference_batches import PairTokens
    from lmforge.tokenizers.base import SPECIAL_TOKENS

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL_TOKENS), vocab, (n, PROMPT + 2 * ANSWER), generator=g)
    margins = torch.rand(n, generator=g)
    out = []
    for row, m in zip(ids.tolist(), margins.tolist()):
        prompt, chosen, rejected = row[:PROMPT], row[PROMPT : PROMPT + ANSWER], row[-ANSWER:]
        out.append(PairTokens(PROMPT, prompt + chosen, prompt + rejected, m, ""))
    return out


def prepare(work: Path) -> Setup:
    """Tokenizer, the initial model (seed 0), its HF export, and the pool of pairs."""
    from lmforge.export.hf import export_hf
    from lmforge.models import build_model

    load = load_average()
    tok = bench_tokenizer(work)
    torch.manual_seed(0)
    model = build_model("llama", dict(vocab_size=tok.vocab_size, block_size=CONTEXT, **MODEL))
    hf_dir = export_hf(model, tok, work / "hf", force=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    pairs = random_pairs(tok.vocab_size, POOL)
    return Setup(work, tok, model.config, state, hf_dir, pairs, pad, load)


def lmforge_model(setup: Setup, *, frozen: bool = False):
    """A fresh lmforge LLaMA with the initial weights (frozen: eval mode, no gradients)."""
    from lmforge.models import build_model

    model = build_model("llama", setup.mcfg)
    model.load_state_dict(setup.init_state)
    if frozen:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return model


def batches(setup: Setup, args, seed: int):
    """lmforge's batch source of round `seed` (its shuffle is the order both sides read)."""
    from lmforge.data.preference_batches import PreferenceBatches

    return PreferenceBatches(
        setup.pairs, args.batch, pad_id=setup.pad, seed=seed, share_prompt=not args.two_rows
    )


def round_order(setup: Setup, args, seed: int, steps: int) -> list[int]:
    """The pool indices that `steps` steps of round `seed` read, in order."""
    return batches(setup, args, seed).order(0)[: steps * args.batch]


# -- lmforge ------------------------------------------------------------------------------
class TimedBatches:
    """A batch source that stamps each request: the step boundaries."""

    def __init__(self, inner):
        self.inner, self.stamps = inner, []

    def next_batch(self):
        self.stamps.append(stamp())
        return self.inner.next_batch()

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def train_config(args, steps: int):
    """lmforge's loop settings: the AdamW, clipping and constant schedule TRL gets too."""
    from lmforge.train.config import TrainConfig

    return TrainConfig(
        batch_size=args.batch, max_steps=steps, lr=args.lr, min_lr=args.lr, warmup=0,
        schedule="constant", weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, dtype="fp32",
        compile=args.compile, eval_every=0, save_every=0, log_every=steps, device="cpu",
        parallel="none", threads=args.threads, seed=0,
    )  # fmt: skip


def run_lmforge(setup: Setup, args, model, objective, steps: int, seed: int) -> StepLog:
    """`steps` + 1 optimizer steps of `objective` through lmforge's loop; their log."""
    from lmforge.train.hooks import LoopHook
    from lmforge.train.loop import train

    log = StepLog()

    class Losses(LoopHook):
        def after_step(self, loop, record):
            log.losses.append(float(record.loss_sum) / max(1, int(record.n_tokens)))

    src = TimedBatches(batches(setup, args, seed))
    train(model, objective, src, train_config(args, steps + 1), run_dir=None, hooks=[Losses()])
    # stamps[k]: the start of step k; the extra last step closes step `steps - 1`.
    log.seconds, log.cpu = durations(src.stamps, steps)
    return log


# -- TRL ----------------------------------------------------------------------------------
def trl_args(setup: Setup, args, steps: int, seed: int) -> dict[str, Any]:
    """TrainingArguments both TRL configs get: lmforge's optimizer, fp32, sequential data."""
    return dict(
        output_dir=str(setup.work / "trl"), max_steps=steps,
        per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8,
        max_grad_norm=1.0, optim="adamw_torch_fused",
        # TRL 1.12 configs default to bf16 autocast and gradient checkpointing: off.
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        report_to="none", save_strategy="no", eval_strategy="no",
        logging_steps=steps, seed=seed, data_seed=seed, dataloader_num_workers=0,
        disable_tqdm=True, train_sampling_strategy="sequential", torch_compile=args.compile,
    )  # fmt: skip


class RecordLosses:
    """Mixin for a TRL trainer: every training `compute_loss` appends to `bench_losses`."""

    bench_losses: list[float]

    def compute_loss(self, model, inputs, *a, **kw):
        loss = super().compute_loss(model, inputs, *a, **kw)
        if model.training and hasattr(self, "bench_losses"):  # set by run_trl
            self.bench_losses.append(float(loss.detach()))
        return loss


def run_trl(trainer) -> StepLog:
    """Train a `RecordLosses` trainer to its max_steps; the step durations and losses."""
    from transformers import PrinterCallback, TrainerCallback

    stamps: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            stamps.append(stamp())

    trainer.bench_losses = []
    trainer.add_callback(Clock())
    trainer.remove_callback(PrinterCallback)  # it prints the log dict
    trainer.train()
    wall, cpu = durations(stamps, len(stamps) - 1)
    return StepLog(wall, trainer.bench_losses, cpu)


# -- where the time goes --------------------------------------------------------------------
class ModuleTimer:
    """Seconds spent inside `module`'s forward since the last `reset`."""

    def __init__(self, module: torch.nn.Module):
        self.seconds, self._t0 = 0.0, 0.0
        module.register_forward_pre_hook(self._start)
        module.register_forward_hook(self._stop)

    def _start(self, *_):
        self._t0 = time.perf_counter()

    def _stop(self, *_):
        self.seconds += time.perf_counter() - self._t0

    def reset(self) -> None:
        self.seconds = 0.0


def split(
    loss_fn: Callable[[Any], torch.Tensor],
    next_batch: Callable[[], Any],
    opt: torch.optim.Optimizer,
    reps: int,
    reference: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Median seconds of forward (with loss), backward and optimizer step over `reps` steps.

    With `reference`, also the part of the forward spent in that module ("reference").
    """
    timer = ModuleTimer(reference) if reference is not None else None
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    if timer is not None:
        parts["reference"] = []
    for r in range(reps + 1):
        b = next_batch()
        if timer is not None:
            timer.reset()
        t0 = time.perf_counter()
        loss = loss_fn(b)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if r:  # the first is a warm-up
            for k, v in zip(("forward", "backward", "optimizer"), (t1 - t0, t2 - t1, t3 - t2)):
                parts[k].append(v)
            if timer is not None:
                parts["reference"].append(timer.seconds)
    return {k: statistics.median(v) for k, v in parts.items()}


# -- report -------------------------------------------------------------------------------
class Rounds:
    """Each side's timed steps over all rounds, its median step per round, its losses."""

    def __init__(self, variants: list[str], warmup: int, steps: int):
        self.variants, self.warmup, self.steps = variants, warmup, steps
        self.timed = {v: StepLog() for v in variants}
        self.round_s: dict[str, list[float]] = {v: [] for v in variants}
        self.losses: dict[str, list[list[float]]] = {v: [] for v in variants}

    def add(self, name: str, log: StepLog) -> None:
        """One round of side `name`: its steps after the warm-up are timed."""
        sl = slice(self.warmup, self.warmup + self.steps)
        self.timed[name].seconds.extend(log.seconds[sl])
        self.timed[name].cpu.extend(log.cpu[sl])
        self.round_s[name].append(statistics.median(log.seconds[sl]))
        self.losses[name].append(log.losses)

    def line(self, r: int, rounds: int) -> str:
        return f"round {r + 1}/{rounds}: " + ", ".join(
            f"{v} {self.round_s[v][-1]:.3f} s/step" for v in self.variants
        )

    def results(self, batch: int, splits: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        out = []
        for v in self.variants:
            s = summary(v, self.timed[v], batch, splits[v])
            s["round_step_s"] = self.round_s[v]
            s["losses_round_1"] = self.losses[v][0]
            out.append(s)
        return out


def print_results(results: list[dict[str, Any]]) -> None:
    """The Markdown table: pairs/s, best step, wall and CPU s/step, the split."""
    rows = [
        [s["impl"], f"{s['pairs_s']:.1f}", f"{s['pairs_s_best_step']:.1f}",
         f"{s['step_s_median']:.3f}", f"{s['cpu_s_per_step_median']:.3f}",
         split_cell(s["split_s"])]
        for s in results
    ]  # fmt: skip
    ref = " (ref)" if any("reference" in s["split_s"] for s in results) else ""
    print_table(["impl", "pairs/s", "pairs/s (best step)", "s/step", "CPU s/step",
                 f"fwd{ref} / bwd / opt s"], rows)  # fmt: skip


def summary(name: str, log: StepLog, batch: int, split_s: dict[str, float]) -> dict[str, Any]:
    return {
        "impl": name,
        "steps_timed": len(log.seconds),
        "step_s_median": statistics.median(log.seconds),
        "pairs_s": batch / statistics.median(log.seconds),
        # The fastest step: on a shared machine load only slows a step down.
        "pairs_s_best_step": batch / min(log.seconds),
        "step_s_all": [round(x, 4) for x in log.seconds],
        "cpu_s_per_step_median": statistics.median(log.cpu),
        "split_s": split_s,
    }


def split_cell(sp: dict[str, float]) -> str:
    """ "fwd (ref) / bwd / opt" seconds for the table."""
    fwd = f"{sp['forward']:.3f}"
    if "reference" in sp:
        fwd += f" ({sp['reference']:.3f})"
    return f"{fwd} / {sp['backward']:.3f} / {sp['optimizer']:.3f}"


def loss_agreement(lm: list[list[float]], trl: list[list[float]]) -> dict[str, Any]:
    """First-step losses of every round on both sides and the largest differences.

    `lm[r]`, `trl[r]`: round r's per-step losses. Same weights and same first batch
    give the same first loss; later steps also test that the updates match.
    """
    first = [(a[0], b[0]) for a, b in zip(lm, trl)]
    every = [abs(x - y) for a, b in zip(lm, trl) for x, y in zip(a, b)]
    return {
        "first_step": [{"lmforge": a, "trl": b} for a, b in first],
        "first_step_max_abs_diff": max(abs(a - b) for a, b in first),
        "all_steps_max_abs_diff": max(every),
    }


def matmul_gflops() -> float:
    """The CPU's fp32 rate on a 2048² product (to compare machines by)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, 5, warmup=1) / 1e9


def add_common_args(ap) -> None:
    ap.add_argument("--batch", type=int, default=8, help="pairs per step (2x rows)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round and side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first, per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--work", help="folder for the tokenizer and export (default: temp)")
    ap.add_argument("--tag", default="", help="suffix of the result file (<name>_<tag>.json)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 2 steps, no JSON")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="both sides through torch.compile (lmforge --compile, TRL torch_compile=True); "
        "the warm-up steps absorb the compilation",
    )
    ap.add_argument(
        "--two-rows", action="store_true",
        help="lmforge: a row per answer (--no-share-prompt) instead of the stages' default, "
        "one row per pair with the prompt once",
    )  # fmt: skip


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: other jobs on a shared machine show here."""
    return [round(x, 2) for x in os.getloadavg()]


def config_record(setup: Setup, args) -> dict[str, Any]:
    import transformers
    import trl

    return {
        "model": {**MODEL, "vocab_size": setup.tok.vocab_size, "block_size": CONTEXT},
        "prompt_tokens": PROMPT, "answer_tokens": ANSWER, "pool_pairs": POOL,
        "data": "random token ids (no special ids): every row exactly prompt + answer",
        "batch_pairs": args.batch, "steps": args.steps, "warmup": args.warmup,
        "rounds": args.rounds, "lr": args.lr, "threads": torch.get_num_threads(),
        "lmforge_layout": layout_note(args), "compile": args.compile,
        "trl": trl.__version__, "transformers": transformers.__version__,
        "load_average_start": setup.load_start,
    }  # fmt: skip


def layout_note(args) -> str:
    """lmforge's rows per step, in words (TRL always runs 2 × batch rows of prompt + answer)."""
    if args.two_rows:
        return f"{2 * args.batch} rows × {PROMPT + ANSWER} tokens (a row per answer)"
    return (f"{args.batch} rows × {PROMPT + 2 * ANSWER + 1} tokens (a row per pair: the prompt "
            "once, both answers as branches)")  # fmt: skip


def require_trl(name: str) -> None:
    try:
        import trl  # noqa: F401
    except ImportError:
        print(f"{name} benchmark: trl is not installed here; install the peers extra "
              "(pip install -e '.[peers]') as this script's docstring says")  # fmt: skip
        raise SystemExit(2) from None
