"""The runs of experiment C6 (prompt tuning vs full fine-tuning): what is trained and scored.

`pretrain_size` pretrains one more model size on the base's shards (`lmforge pretrain`);
`tune` runs `lmforge prompt-tune` once (20 soft tokens on the frozen model, or `--full`:
every weight, no soft tokens; the same rows, loss, steps, batch and seed) and reads its
result.json; `zero_shot_accuracy` scores the untuned model on the same bare queries
(``Text: ...\\nTopic:``) by label scoring, as the prompt-tune report does without its
soft prompt. Settings are plain dataclasses so that --quick differs only in numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import LmforgeError
from ..runs.layout import RESULT_FILE
from .claims import ClaimContext


@dataclass(frozen=True)
class SizeSpec:
    """A model size pretrained inside the experiment (the base is the other size)."""

    name: str  # the table's label, e.g. "llama-tiny"
    preset: str  # `lmforge pretrain --preset`
    model_flags: tuple[str, ...]  # --model.* overrides (context length, a smaller quick model)
    pretrain_flags: tuple[str, ...]  # budget and optimiser of its pretraining


@dataclass(frozen=True)
class TuneSettings:
    """One budget for both methods: same task, rows, steps, batch, seed; own learning rates."""

    task: str  # a world task: sentiment or topic
    steps: int
    batch_size: int
    warmup: int
    soft_lr: float  # soft tokens move a few thousand numbers: a large rate
    full_lr: float
    n_before: int  # 10 + 10 = the claim's 20 soft tokens
    n_after: int
    init: str  # soft-token init (`lmforge prompt-tune --init`)
    test_limit: int  # 0: every test example
    extra: tuple[str, ...] = ()  # flags both runs get (--dtype fp32 in --quick)


@dataclass(frozen=True)
class Tuned:
    """What one prompt-tune run reports (result.json)."""

    accuracy: float
    trainable: int
    total: int
    wall_s: float
    steps: int


def pretrain_size(ctx: ClaimContext, spec: SizeSpec) -> Path:
    """Pretrain `spec` on the base's shards into ctx.out/pretrain_<name>; its run folder."""
    assert ctx.base is not None
    out = ctx.out / f"pretrain_{spec.name}"
    argv = ["pretrain", "--data", str(ctx.base.shards), "--out", str(out), "--arch", "llama",
            "--preset", spec.preset, *spec.model_flags, *spec.pretrain_flags,
            "--seed", str(ctx.seed), "--eval-every", "0", *ctx.thread_flags()]  # fmt: skip
    ctx.verb(argv, f"pretrain_{spec.name}")
    return out


def tune(ctx: ClaimContext, s: TuneSettings, run: Path, name: str, *, full: bool) -> Tuned:
    """`lmforge prompt-tune` of `run`: 20 soft tokens on the frozen model, or `--full`."""
    assert ctx.base is not None
    out = ctx.out / "tune" / name
    lr = s.full_lr if full else s.soft_lr
    method = (
        ["--full", "--n-before", "0", "--n-after", "0"]
        if full
        else ["--n-before", str(s.n_before), "--n-after", str(s.n_after), "--init", s.init]
    )
    argv = ["prompt-tune", "--from", str(run), "--task", s.task, "--world", str(ctx.base.world),
            "--out", str(out), "--max-steps", str(s.steps), "--batch-size", str(s.batch_size),
            "--warmup", str(s.warmup), "--lr", f"{lr:g}", "--min-lr", f"{lr / 10:g}",
            "--seed", str(ctx.seed), "--eval-every", "0", "--save-every", "0",
            "--test-limit", str(s.test_limit), *s.extra, *method,
            *ctx.thread_flags()]  # fmt: skip
    ctx.verb(argv, f"tune_{name}")
    return read_tuned(out)


def read_tuned(out: Path) -> Tuned:
    """A finished prompt-tune run's result.json as a `Tuned`."""
    path = out / RESULT_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LmforgeError(f"{path}: cannot read the prompt-tune result ({e})") from None
    if doc.get("test_accuracy") is None:
        raise LmforgeError(f"{path}: no test accuracy (the task has no test examples)")
    return Tuned(float(doc["test_accuracy"]), int(doc["trainable_params"]),
                 int(doc["total_params"]), float(doc["wall_s"]), int(doc["steps"]))  # fmt: skip


def zero_shot_accuracy(ctx: ClaimContext, s: TuneSettings, run: Path) -> float:
    """Test accuracy of the untuned model by label scoring on the bare queries (the rows
    prompt-tune trains on, less the label), the main label word of each label."""
    import torch

    from ..prompting.scoring import score_labels
    from ..prompting.soft_batches import label_ids
    from ..prompting.tasks import load_task
    from ..runs.load import load_run

    assert ctx.base is not None
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    model = load_run(run, need="transformer-decoder")
    task = load_task(s.task, world=str(ctx.base.world), fmt=0)
    test = task.test[: s.test_limit] if s.test_limit else task.test
    labels = label_ids(task, model.tokenizer)
    names = list(labels)
    prompts = [model.tokenizer.encode(task.query_text(ex)) for ex in test]
    with torch.inference_mode():
        pred = score_labels(model.model, prompts, [[labels[n]] for n in names], names)
    hits = sum(p == ex.label for p, ex in zip(pred.predictions(), test))
    return hits / len(test)
