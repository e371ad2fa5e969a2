"""TRL's side of benchmarks/ppo.py: one PPO iteration and one GRPO step, timed and split.

Both trainers run on the tiny LLaMA of benchmarks/_pairs_bench.py (d_model 256,
6 layers, 4 heads, vocab 2048, fp32), loaded from its `export_hf` folder so that
TRL starts from the weights lmforge starts from, on prompts of exactly
`RLShape.prompt` tokens (pseudo-word text whose tokenization is that long: GRPO
reads text, PPO the same ids), with responses of exactly `RLShape.response`
tokens:

* `trl_ppo_times`: `trl.experimental.ppo.PPOTrainer` (the PPO of TRL 1.12, the
  last release that ships it) with a policy, a reference policy, a value model
  and a reward model, four separate models of the same size (the value and
  reward models are `AutoModelForSequenceClassification`, num_labels=1, on the
  same export). One iteration = a rollout of `episodes` prompts (generation,
  then forward passes of the reference, value and reward models) and
  `ppo_epochs` x `minibatches` optimizer steps of policy + value;
* `trl_grpo_times`: `trl.GRPOTrainer` with a Python reward (distinct tokens in
  the completion), `grpo_prompts` x `grpo_completions` completions per step,
  beta > 0 so that the reference model runs (TRL 1.12's default beta is 0.0,
  which skips it).

Iterations are timed from one step boundary to the next (PPO: `on_train_begin`
then each `on_step_end`; GRPO: each `on_step_begin`), after `warmup` untimed
ones. Inside each, module-level functions TRL calls are wrapped to see where the
time goes: generation, the rest of the rollout, and the update with its
backward passes and optimizer steps. TRL's own code is unchanged.

Run it alone (about a minute on 2 cores):

    .venv/bin/python benchmarks/_trl_rl.py            # writes results/ppo_trl_probe.json
    .venv/bin/python benchmarks/_trl_rl.py --quick    # one timed iteration each, no JSON
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# Its siblings are importable: as a script this folder is sys.path[0], and an importer
# (benchmarks/ppo.py) has put it there to import this module.
import _pairs_bench as pb  # sets HF_HUB_OFFLINE before anything imports HF
import torch
from _bench import print_table, write_result

HERE = Path(__file__).resolve().parent

PPO_NAME, GRPO_NAME = "TRL PPOTrainer", "TRL GRPOTrainer"
GRPO_BETA = 0.04  # TRL 1.12 defaults to 0.0 (no reference model); 0.04 was its earlier default


@dataclasses.dataclass
class RLShape:
    """The work of one PPO iteration and one GRPO step (both sides of ppo.py use it)."""

    episodes: int = 16  # PPO prompts (= rollouts) per iteration
    response: int = 32  # new tokens per rollout, exactly (no stop token)
    prompt: int = 32  # prompt tokens, exactly
    ppo_epochs: int = 4  # passes over the rollouts per iteration
    minibatches: int = 2  # optimizer steps per pass (episodes / minibatches rows each)
    grpo_prompts: int = 8  # GRPO prompts per step
    grpo_completions: int = 8  # completions per prompt (the group)
    lr: float = 1e-5  # both trainers; constant, AdamW as in the pairs benchmarks
    seed: int = 0

    def __post_init__(self) -> None:
        from lmforge.common import LmforgeError

        if self.episodes % self.minibatches:
            raise LmforgeError(f"RLShape.episodes: {self.episodes} is not a multiple of "
                               f"minibatches ({self.minibatches}); change one of them")  # fmt: skip
        if self.grpo_completions < 2:
            raise LmforgeError(f"RLShape.grpo_completions: {self.grpo_completions}; GRPO "
                               "needs at least 2 completions per prompt")  # fmt: skip

    @property
    def grpo_rows(self) -> int:
        return self.grpo_prompts * self.grpo_completions


# -- prompts --------------------------------------------------------------------------------
def rl_prompts(
    hf_dir: Path | str, n: int, length: int, seed: int = 0
) -> list[tuple[str, list[int]]]:
    """`n` (text, ids) prompts of seeded pseudo-words whose tokenization is `length` ids.

    GRPO tokenizes text prompts itself, so a prompt must be text that comes back as
    exactly `length` ids; PPO and lmforge read those ids. The words are drawn like
    the benchmark tokenizer's corpus (Zipf-like letters), so they tokenize like it.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [1 / (i + 1) for i in range(len(letters))]
    out: list[tuple[str, list[int]]] = []
    for _ in range(100 * n):  # most attempts land on `length` within a few words
        if len(out) == n:
            break
        words: list[str] = []
        ids: list[int] = []
        while len(ids) < length:
            words.append("".join(rng.choices(letters, weights, k=rng.randint(2, 8))))
            ids = tok(" ".join(words), add_special_tokens=False)["input_ids"]
        if len(ids) == length and tok(" ".join(words))["input_ids"] == ids:
            out.append((" ".join(words), ids))
    if len(out) < n:
        raise RuntimeError(f"found only {len(out)} of {n} prompts of {length} tokens")
    return out


# -- timing ---------------------------------------------------------------------------------
class Phases:
    """Seconds accumulated per named phase, and the step boundaries that slice them."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}  # of the `timed` functions: the work done, counted
        self.marks: list[tuple[float, float, dict[str, float]]] = []  # (wall, cpu, totals)
        # Phases measured elsewhere (module hooks): name -> their cumulative seconds now.
        self.probes: dict[str, Callable[[], float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.total[name] = self.total.get(name, 0.0) + seconds

    def timed(self, name: str, fn: Callable) -> Callable:
        """`fn` with its wall time added to phase `name` on every call."""

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.add(name, time.perf_counter() - t0)
                self.calls[name] = self.calls.get(name, 0) + 1

        return wrapper

    def mark(self) -> None:
        """A step boundary: now, the CPU time, and a copy of every phase's total."""
        wall, cpu = pb.stamp()
        totals = dict(self.total) | {name: read() for name, read in self.probes.items()}
        totals |= {f"{name} calls": float(n) for name, n in self.calls.items()}
        self.marks.append((wall, cpu, totals))

    def steps(self, warmup: int, n: int) -> list[dict[str, float]]:
        """Per timed step (after `warmup`): wall and CPU seconds and each phase's seconds."""
        out = []
        for k in range(warmup, warmup + n):
            (w0, c0, p0), (w1, c1, p1) = self.marks[k], self.marks[k + 1]
            row = {"wall": w1 - w0, "cpu": c1 - c0}
            row.update({name: p1.get(name, 0.0) - p0.get(name, 0.0) for name in p1})
            out.append(row)
        return out


@contextlib.contextmanager
def patched(owner: Any, name: str, wrap: Callable[[Callable], Callable]) -> Iterator[None]:
    """`owner.name` replaced by `wrap(owner.name)` inside the block, restored after."""
    own = name in getattr(owner, "__dict__", {})  # else a method of its class
    orig = getattr(owner, name)
    setattr(owner, name, wrap(orig))
    try:
        yield
    finally:
        if own:
            setattr(owner, name, orig)
        else:
            delattr(owner, name)


def step_clock(phases: Phases):
    """A TrainerCallback that marks each step's start (a step ends where the next begins)."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            phases.mark()

    return Clock()


def summarize(name: str, rows: list[dict[str, float]], parts: list[str]) -> dict[str, Any]:
    """Median seconds per step and per phase, and each phase's share of the timed wall time."""
    wall = sum(r["wall"] for r in rows)
    return {
        "impl": name,
        "steps_timed": len(rows),
        "step_s_median": statistics.median(r["wall"] for r in rows),
        "step_s_best": min(r["wall"] for r in rows),
        "step_s_all": [round(r["wall"], 4) for r in rows],
        "cpu_s_median": statistics.median(r["cpu"] for r in rows),
        # About the thread count on an idle machine; near 1 or below when other jobs
        # share the cores (then OpenMP threads wait on each other and wall time balloons).
        "cpu_per_wall": statistics.median(r["cpu"] / r["wall"] for r in rows),
        "split_s": {p: statistics.median(r.get(p, 0.0) for r in rows) for p in parts},
        "share": {p: sum(r.get(p, 0.0) for r in rows) / wall for p in parts},
        # How often each wrapped function ran per step: the work is what it should be.
        "calls_per_step": {
            k.removesuffix(" calls"): statistics.median(r[k] for r in rows)
            for k in rows[0]
            if k.endswith(" calls")
        },
    }


# -- common set-up --------------------------------------------------------------------------
@contextlib.contextmanager
def folders(setup_or_hf: pb.Setup | Path | str) -> Iterator[tuple[Path, Path]]:
    """(hf_dir, work folder for TRL's output_dir) from a `_pairs_bench.Setup` or an HF folder.

    With a bare HF folder the work folder is a temporary one, removed after the block.
    """
    if isinstance(setup_or_hf, pb.Setup):
        yield Path(setup_or_hf.hf_dir), Path(setup_or_hf.work)
        return
    hf = Path(setup_or_hf)
    if not (hf / "config.json").is_file():
        raise FileNotFoundError(f"{hf}: not an HF model folder (no config.json)")
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-trl-rl-") as tmp:
        yield hf, Path(tmp)


def optimizer_steps(opt) -> int:
    """Steps the torch optimizer under accelerate's wrapper really took (AdamW's count)."""
    inner = getattr(opt, "optimizer", opt)
    return max((int(st["step"]) for st in inner.state.values() if "step" in st), default=0)


def base_args(work: Path, shape: RLShape, sub: str) -> dict[str, Any]:
    """TrainingArguments both configs get: the pairs benchmarks' optimizer, fp32, no I/O."""
    args = pb.trl_args(
        SimpleNamespace(work=work), SimpleNamespace(batch=1, lr=shape.lr), 1, shape.seed
    )
    args.update(output_dir=str(work / sub), logging_steps=1)
    for k in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps"):
        del args[k]  # set by each config
    return args


def causal_lm(hf_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="sdpa"
    )


def scalar_model(hf_dir: Path, seed: int):
    """A value or reward model: the export's backbone and a seeded score head (num_labels=1)."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the score head is initialized fresh
    return AutoModelForSequenceClassification.from_pretrained(
        hf_dir, num_labels=1, dtype=torch.float32, attn_implementation="sdpa"
    )


# -- PPO ------------------------------------------------------------------------------------
def ppo_config(work: Path, shape: RLShape, iterations: int):
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        **base_args(work, shape, "ppo"),
        # One iteration = `episodes` rollouts: one micro batch of all of them, no
        # accumulation, so each of the `minibatches` minibatches is one forward,
        # one backward and one optimizer step (with accumulation > 1 accelerate
        # would skip every other optimizer step, as the minibatch is one micro batch).
        per_device_train_batch_size=shape.episodes,
        gradient_accumulation_steps=1,
        num_mini_batches=shape.minibatches,
        num_ppo_epochs=shape.ppo_epochs,
        total_episodes=shape.episodes * iterations,
        local_rollout_forward_batch_size=shape.episodes,  # the rollout in one chunk
        response_length=shape.response,
        stop_token=None, stop_token_id=None,  # never truncated: exactly `response` tokens
        missing_eos_penalty=None,
        num_sample_generations=0,  # no extra sampling of an eval set during training
    )  # fmt: skip


def ppo_trainer(hf_dir: Path, work: Path, shape: RLShape, iterations: int):
    """TRL's PPOTrainer on `episodes * iterations` prompts, four models from one export."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.experimental.ppo import PPOTrainer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    prompts = rl_prompts(hf_dir, shape.episodes * iterations, shape.prompt, shape.seed)
    data = Dataset.from_dict({"input_ids": [ids for _, ids in prompts]})
    policy, ref = causal_lm(hf_dir), causal_lm(hf_dir)
    return PPOTrainer(
        args=ppo_config(work, shape, iterations), processing_class=tok,
        model=policy, ref_model=ref, reward_model=scalar_model(hf_dir, shape.seed + 2),
        value_model=scalar_model(hf_dir, shape.seed + 1), train_dataset=data,
    )  # fmt: skip


PPO_PARTS = ["generation", "rollout", "ref_forward", "value_reward_forward", "update",
             "backward", "optimizer"]  # fmt: skip


def trl_ppo_times(
    setup_or_hf: pb.Setup | Path | str, shape: RLShape | None = None,
    iterations: int = 3, warmup: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Seconds per PPO iteration of TRL's PPOTrainer and where they go.

    Returns the median wall and CPU seconds per iteration over `iterations` timed
    iterations (after `warmup`), and per phase (medians; `share`: of the timed wall
    time): "generation" (inside TRL's `batch_generation`), "rollout" (the iteration
    up to the first forward pass with gradients: generation, the reference, value
    and reward forward passes, rewards and advantages), of which "ref_forward" and
    "value_reward_forward", and "update" (the rest: `ppo_epochs` x `minibatches`
    policy + value forward, backward and optimizer steps, then TRL's metrics), of
    which "backward" and "optimizer". The first iteration also pays for the
    previous one's clean-up, so every timed one does too.
    """
    shape = shape or RLShape()
    with folders(setup_or_hf) as (hf_dir, work):
        trainer = ppo_trainer(hf_dir, work, shape, warmup + iterations)
        out = run_ppo(trainer, warmup, iterations)
    out["config"] = ppo_record(trainer.args, shape)
    return out


def run_ppo(trainer, warmup: int, iterations: int) -> dict[str, Any]:
    """Train `trainer` (warmup + iterations iterations) with TRL's functions wrapped."""
    from transformers import PrinterCallback, TrainerCallback
    from trl.experimental.ppo import ppo_trainer as ppo_mod

    phases = Phases()
    lengths: set[int] = set()
    update_t0: list[float] = []  # when this iteration's update began, once it has

    def gen_wrap(fn):
        def wrapper(model, queries, *a, **kw):
            t0 = time.perf_counter()
            qr, logits = fn(model, queries, *a, **kw)
            phases.add("generation", time.perf_counter() - t0)
            lengths.add(qr.shape[1] - queries.shape[1])  # new tokens of this rollout
            return qr, logits

        return wrapper

    def forward_wrap(fn):
        def wrapper(*a, **kw):
            if not torch.is_grad_enabled():  # in the rollout: the reference's forward
                return phases.timed("ref_forward", fn)(*a, **kw)
            if not update_t0:  # the first forward with gradients: the update begins
                update_t0.append(time.perf_counter())
                phases.add("rollout", update_t0[0] - phases.marks[-1][0])
            return fn(*a, **kw)

        return wrapper

    class Boundaries(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            phases.mark()

        def on_step_end(self, args, state, control, **kw):
            if update_t0:
                phases.add("update", time.perf_counter() - update_t0.pop())
            phases.mark()

    trainer.remove_callback(PrinterCallback)  # it prints every log dict
    trainer.add_callback(Boundaries())
    acc, opt = trainer.accelerator, trainer.optimizer
    with (
        patched(ppo_mod, "batch_generation", gen_wrap),
        patched(ppo_mod, "forward", forward_wrap),
        patched(ppo_mod, "get_reward", lambda fn: phases.timed("value_reward_forward", fn)),
        patched(acc, "backward", lambda fn: phases.timed("backward", fn)),
        patched(opt, "step", lambda fn: phases.timed("optimizer", fn)),
        contextlib.redirect_stdout(io.StringIO()),  # TRL prints "===training policy==="
    ):
        trainer.train()
    if len(phases.marks) != warmup + iterations + 1:
        raise RuntimeError(f"PPO ran {len(phases.marks) - 1} iterations, not {warmup + iterations}")
    out = summarize(PPO_NAME, phases.steps(warmup, iterations), PPO_PARTS)
    out["response_tokens"] = sorted(lengths)
    out["optimizer_steps_taken"] = optimizer_steps(opt)  # all iterations, warm-up included
    out["last_log"] = trainer.state.log_history[-1] if trainer.state.log_history else {}
    return out


def ppo_record(args, shape: RLShape) -> dict[str, Any]:
    """The options that set the work of an iteration, as TRL resolved them."""
    keys = ["per_device_train_batch_size", "gradient_accumulation_steps", "num_mini_batches",
            "local_batch_size", "local_mini_batch_size", "num_ppo_epochs", "response_length",
            "local_rollout_forward_batch_size", "stop_token_id", "temperature", "kl_coef",
            "vf_coef", "cliprange", "cliprange_value", "gamma", "lam", "whiten_rewards",
            "learning_rate", "lr_scheduler_type", "optim", "weight_decay", "max_grad_norm",
            "bf16", "gradient_checkpointing", "num_sample_generations"]  # fmt: skip
    rec = {k: getattr(args, k) for k in keys}
    rec["optimizer_steps_per_iteration"] = shape.ppo_epochs * shape.minibatches
    rec["rows_per_optimizer_step"] = shape.episodes // shape.minibatches
    return rec


# -- GRPO -----------------------------------------------------------------------------------
def distinct_tokens(completion_ids: list[list[int]], **_) -> list[float]:
    """GRPO's reward here: distinct ids in each completion (cheap, varies within a group)."""
    return [float(len(set(ids))) for ids in completion_ids]


def grpo_config(work: Path, shape: RLShape, steps: int):
    from trl import GRPOConfig

    return GRPOConfig(
        **base_args(work, shape, "grpo"),
        max_steps=steps,
        # One step = `grpo_prompts` x `grpo_completions` completions generated
        # together and trained on as one batch: one forward, backward, optimizer step.
        per_device_train_batch_size=shape.grpo_rows,
        gradient_accumulation_steps=1,
        num_generations=shape.grpo_completions,
        max_completion_length=shape.response,
        # No eos before `response` tokens: every completion is exactly that long.
        generation_kwargs={"min_new_tokens": shape.response},
        beta=GRPO_BETA,
        num_iterations=1,
        disable_dropout=True,
        log_completions=False,
        model_init_kwargs={"dtype": torch.float32, "attn_implementation": "sdpa"},
    )  # fmt: skip


def grpo_trainer(hf_dir: Path, work: Path, shape: RLShape, steps: int):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    prompts = rl_prompts(hf_dir, shape.grpo_prompts * steps, shape.prompt, shape.seed)
    args = grpo_config(work, shape, steps)
    tok = AutoTokenizer.from_pretrained(hf_dir, padding_side="left")
    return GRPOTrainer(
        model=str(hf_dir), reward_funcs=distinct_tokens, args=args,
        train_dataset=Dataset.from_dict({"prompt": [text for text, _ in prompts]}),
        processing_class=tok,
    )  # fmt: skip


GRPO_PARTS = ["generation", "rollout", "ref_forward", "update", "backward", "optimizer"]


def trl_grpo_times(
    setup_or_hf: pb.Setup | Path | str, shape: RLShape | None = None,
    steps: int = 3, warmup: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Seconds per GRPO step of TRL's GRPOTrainer and where they go.

    Median wall and CPU seconds per step over `steps` timed steps (after `warmup`),
    and per phase: "generation" (`_generate_single_turn`: HF generate of all
    completions), "rollout" (`_generate_and_score_completions`: generation, text
    decoding, the reward function, the reference forward, advantages), of which
    "ref_forward", and "update" (the rest of the step: policy forward, loss,
    backward, optimizer, logging), of which "backward" and "optimizer".
    """
    shape = shape or RLShape()
    with folders(setup_or_hf) as (hf_dir, work):
        trainer = grpo_trainer(hf_dir, work, shape, warmup + steps + 1)  # the last closes a step
        out = run_grpo(trainer, warmup, steps)
    out["config"] = grpo_record(trainer.args, shape)
    return out


def run_grpo(trainer, warmup: int, steps: int) -> dict[str, Any]:
    """Train `trainer` (warmup + steps + 1 steps) with its generation and scoring wrapped."""
    from transformers import PrinterCallback

    phases = Phases()
    lengths: set[int] = set()

    def gen_wrap(fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            completion_ids, logprobs = fn(*a, **kw)
            phases.add("generation", time.perf_counter() - t0)
            lengths.update(len(c) for c in completion_ids)
            return completion_ids, logprobs

        return wrapper

    if trainer.ref_model is None:
        raise RuntimeError("GRPOTrainer built no reference model (beta is 0?)")
    ref_timer = pb.ModuleTimer(trainer.ref_model)  # never reset: cumulative
    phases.probes["ref_forward"] = lambda: ref_timer.seconds
    trainer.remove_callback(PrinterCallback)  # it prints every log dict
    trainer.add_callback(step_clock(phases))
    opt_box: list[Any] = []
    with (
        patched(trainer, "_generate_single_turn", gen_wrap),
        patched(trainer, "_generate_and_score_completions",
                lambda fn: phases.timed("rollout", fn)),
        patched(trainer.accelerator, "backward", lambda fn: phases.timed("backward", fn)),
        # The optimizer is made inside train(): time its `step` as it is made.
        patched(trainer, "create_optimizer", lambda fn: optimizer_timed(fn, phases, opt_box)),
    ):  # fmt: skip
        trainer.train()
    if len(phases.marks) < warmup + steps + 1:
        raise RuntimeError(f"GRPO ran {len(phases.marks)} steps, not {warmup + steps + 1}")
    rows = phases.steps(warmup, steps)
    for r in rows:
        r["update"] = r["wall"] - r.get("rollout", 0.0)
    out = summarize(GRPO_NAME, rows, GRPO_PARTS)
    out["completion_tokens"] = sorted(lengths)
    out["optimizer_steps_taken"] = optimizer_steps(opt_box[0])  # all steps, warm-up included
    logs = [h for h in trainer.state.log_history if "loss" in h]
    out["last_log"] = logs[-1] if logs else {}
    return out


def optimizer_timed(create: Callable, phases: Phases, box: list[Any]) -> Callable:
    """Trainer.create_optimizer whose optimizer's `step` adds to phase "optimizer"."""

    def wrapper(*a, **kw):
        opt = create(*a, **kw)
        opt.step = phases.timed("optimizer", opt.step)
        box.append(opt)
        return opt

    return wrapper


def grpo_record(args, shape: RLShape) -> dict[str, Any]:
    keys = ["per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation",
            "generation_batch_size", "num_generations", "max_completion_length",
            "generation_kwargs", "beta", "num_iterations", "loss_type", "scale_rewards",
            "epsilon", "temperature", "top_k", "top_p", "learning_rate", "lr_scheduler_type",
            "optim", "weight_decay", "max_grad_norm", "bf16", "gradient_checkpointing",
            "disable_dropout"]  # fmt: skip
    rec = {k: getattr(args, k) for k in keys}
    rec["beta_default_trl"] = 0.0
    rec["reward"] = "distinct token ids in the completion (Python)"
    return rec


# -- report ---------------------------------------------------------------------------------
def print_results(results: list[dict[str, Any]]) -> None:
    """The Markdown table: s per iteration/step, CPU s, and the split with shares."""

    def cell(r: dict[str, Any], part: str) -> str:
        return f"{r['split_s'][part]:.3f} ({100 * r['share'][part]:.0f}%)"

    rows = []
    for r in results:
        rollout_rest = r["split_s"]["rollout"] - r["split_s"]["generation"]
        rows.append([
            r["impl"], f"{r['step_s_median']:.3f}", f"{r['step_s_best']:.3f}",
            f"{r['cpu_s_median']:.2f}", cell(r, "generation"), f"{rollout_rest:.3f}",
            cell(r, "update"),
            f"{r['split_s']['backward']:.3f} / {r['split_s']['optimizer']:.3f}",
        ])  # fmt: skip
    print_table(["impl", "s/iter", "best s/iter", "CPU s/iter", "generation s",
                 "rest of rollout s", "update s", "update: bwd / opt s"], rows)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3, help="timed PPO iterations / GRPO steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed ones first")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--work", help="folder for the tokenizer and export (default: temp)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 timed each, no JSON")
    args = ap.parse_args()
    pb.require_trl("ppo")
    if args.quick:
        args.iterations, args.warmup = 1, 1
    # Keep this folder off the import path from here on: its scripts are named after
    # what they measure (generate.py, reward.py, ...) and could shadow real modules.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    torch.set_num_threads(args.threads)
    pb.quiet()

    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lmforge-bench-trl-rl-")
        work = Path(tmp.name)
    t0 = time.perf_counter()
    setup = pb.prepare(work)
    shape = RLShape()
    print(f"set-up {time.perf_counter() - t0:.0f} s: {shape}", flush=True)
    ppo = trl_ppo_times(setup, shape, args.iterations, args.warmup)
    print(f"PPO: {ppo['step_s_median']:.3f} s/iteration, responses {ppo['response_tokens']} "
          "tokens", flush=True)  # fmt: skip
    grpo = trl_grpo_times(setup, shape, args.iterations, args.warmup)
    print(f"GRPO: {grpo['step_s_median']:.3f} s/step, completions {grpo['completion_tokens']} "
          "tokens", flush=True)  # fmt: skip
    print(f"PPO: {shape.episodes} episodes × {shape.prompt}+{shape.response} tokens, "
          f"{shape.ppo_epochs} epochs × {shape.minibatches} minibatches; GRPO: "
          f"{shape.grpo_prompts} prompts × {shape.grpo_completions} completions of "
          f"{shape.response} tokens, beta {GRPO_BETA}; fp32, {torch.get_num_threads()} threads, "
          f"median of {args.iterations} after {args.warmup} warm-up")  # fmt: skip
    print_results([ppo, grpo])
    gflops = pb.matmul_gflops()
    print(f"fp32 2048² matmul {gflops:,.0f} GFLOP/s; load average {pb.load_average()} "
          f"(at the start {setup.load_start})")  # fmt: skip
    if not args.quick:
        import transformers
        import trl

        payload = {
            "config": {
                "shape": dataclasses.asdict(shape),
                "model": {**pb.MODEL, "vocab_size": setup.tok.vocab_size,
                          "block_size": pb.CONTEXT},
                "iterations": args.iterations, "warmup": args.warmup,
                "threads": torch.get_num_threads(), "trl": trl.__version__,
                "transformers": transformers.__version__,
                "load_average_start": setup.load_start,
            },
            "load_average_end": pb.load_average(),
            "matmul_fp32_gflops": gflops,
            "results": [ppo, grpo],
        }  # fmt: skip
        print(f"wrote {write_result('ppo_trl_probe', payload)}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
