"""`lmforge prompt-tune`: a model tuned on a classification task — soft tokens (the model
frozen; the default), LoRA adapters (`--lora`, the base frozen) or every weight (`--full`).

The three share one objective and one batch source, so they compare like for like
(docs/prompting.md); without soft tokens (`--n-before 0 --n-after 0`) the rows are
plain ``query + label``. Each run writes ``result.json`` (accuracy, trainable
parameters, time, peak memory).

`prompt_tune(cfg, resume=False)` follows the stage contract (`stages.base`): the
parent run (`--from`) gives the weights and the tokenizer; the task
(`lmforge.prompting.tasks.load_task`) gives labelled train and test examples;
`attach_soft_prompt` puts `n_before + n_after` trainable tokens in front of the
frozen embedding (the model itself is not copied); every training row is
``before + query + after + label`` (`prompting.soft_batches`) and the one loop
trains `SFTObjective`, the loss on the label tokens only (`targets_only`: only
those positions reach the output layer). The run folder gets checkpoints
(full state: frozen base + soft table, so `--resume` is exact), metrics, a
report, and ``soft_prompt.safetensors``: the (n, d) table with the base run's
identity, for `lmforge sample --soft-prompt` and label scoring on the parent.
The report states test accuracy by label scoring (`prompting.scoring`: argmax
over each label's summed log-probability, one prefill per prompt), with the
soft prompt and without it (the frozen model zero-shot on the same bare query).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from ..common import ConfigError, LmforgeError, print0
from ..models.soft_prompt import SOFT_PROMPT_FILE, SoftLayout, attach_soft_prompt, save_soft_prompt
from ..prompting.soft_batches import SoftPromptBatches, label_ids, task_rows
from ..runs.layout import RESULT_FILE
from ..train import distributed as D
from ..train.loop import TrainResult, train
from ..train.sft import SFTObjective
from .base import (
    StageStart,
    build_stage_model,
    check_fits_memory,
    origin_note,
    run_stage,
    start_stage,
    write_run_files,
)
from .prompt_tune_config import PromptTuneConfig

STAGE = "prompt-tune"


def load_task_of(cfg: PromptTuneConfig) -> Any:
    """The task `cfg` names (`lmforge.prompting.tasks.load_task`)."""
    from ..prompting.tasks import load_task

    fmt: int | str = int(cfg.fmt) if cfg.fmt.isdigit() else cfg.fmt
    return load_task(cfg.task, world=cfg.world or None, fmt=fmt)


def prompt_tune(cfg: PromptTuneConfig, *, resume: bool = False, task: Any = None) -> TrainResult:
    """Prompt-tune as `cfg` says (continuing RUN/latest with `resume`).

    `task` (a `prompting.tasks.ClassificationTask`) replaces loading `cfg.task`.
    """
    if not resume and not cfg.init_from:
        raise ConfigError("init_from", "required: the run to prompt-tune (`--from RUN`)")
    inputs = tuple(("task data", p) for p in (cfg.world, cfg.task) if p and Path(p).exists())
    start = start_stage(cfg, resume=resume, need="transformer-decoder", inputs=inputs)
    prep = _prepare(cfg, start, task)  # before the lock: bad input leaves the folder alone
    return run_stage(start, cfg, "prompt-tune", "--max-steps", lambda ctx: _run(prep, ctx, start))


@dataclasses.dataclass
class _Prepared:
    """What training starts from: model config, tokenizer, the task's rows."""

    cfg: PromptTuneConfig
    arch: str
    mcfg: Any
    tok: Any
    parent_sd: dict[str, Any] | None
    task: Any
    layout: SoftLayout
    labels: dict[str, list[int]]
    train_rows: list[Any]
    test_rows: list[Any]
    pad_id: int


def _prepare(cfg: PromptTuneConfig, start: StageStart, task: Any) -> _Prepared:
    from ..models import read_model_meta
    from ..runs.load import load_tokenizer

    if start.resume is not None:
        arch, mcfg, meta = read_model_meta(start.resume.model_file)
        tok, parent_sd = load_tokenizer(cfg.out, start.resume), None
        saved = start.resume.state.get("soft_prompt") or {}
        if (saved.get("n_before"), saved.get("n_after")) != (cfg.n_before, cfg.n_after):
            raise LmforgeError(
                f"{start.resume.path}: trained {saved.get('n_before')} + {saved.get('n_after')} "
                f"soft tokens, this run asks for {cfg.n_before} + {cfg.n_after}; resume with the "
                "run's own config.yaml"
            )
    else:
        parent = start.parent
        arch, mcfg, tok = parent.arch, parent.model.config, parent.tokenizer
        parent_sd = parent.model.state_dict()
    task = task if task is not None else load_task_of(cfg)
    seq_len = cfg.seq_len or mcfg.block_size
    if seq_len > mcfg.block_size:
        raise ConfigError(
            "seq_len", f"{seq_len} is above the model's context block_size={mcfg.block_size}"
        )
    layout = SoftLayout(mcfg.vocab_size, cfg.n_before, cfg.n_after)
    labels = label_ids(task, tok)
    rows = dict(labels=labels)
    # A row holds seq_len inputs and, shifted by one, seq_len targets.
    train_rows = task_rows(task, tok, layout, task.train, seq_len + 1, split="train", **rows)
    test = task.test[: cfg.test_limit] if cfg.test_limit else task.test
    test_rows = task_rows(task, tok, layout, test, seq_len + 1, split="test", **rows)
    check_fits_memory(arch, mcfg, cfg.batch_size, seq_len, cfg.device)
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    return _Prepared(cfg, arch, mcfg, tok, parent_sd, task, layout, labels, train_rows, test_rows,
                     pad)  # fmt: skip


def _run(p: _Prepared, ctx: Any, start: StageStart) -> TrainResult:
    from ..eval.perplexity import mean_loss

    cfg, out = p.cfg, Path(p.cfg.out)
    batches = SoftPromptBatches(p.train_rows, cfg.batch_size, p.pad_id, seed=cfg.seed,
                                rank=ctx.rank, world_size=ctx.world_size)  # fmt: skip
    # One task objective, three ways to train it: soft tokens (the model frozen), LoRA
    # adapters (--lora, the base frozen) or every weight (--full); soft tokens may be
    # combined with either.
    model, n_params = build_stage_model(p.arch, p.mcfg, cfg.seed, p.parent_sd, lora=cfg.lora)
    soft = None
    if cfg.n_before + cfg.n_after > 0:
        init_ids = sorted({i for ids in p.labels.values() for i in ids})
        soft = attach_soft_prompt(model, cfg.n_before, cfg.n_after, init=cfg.init,
                                  init_ids=init_ids if cfg.init == "labels" else None,
                                  seed=cfg.seed)  # fmt: skip
    if cfg.full:
        for w in model.parameters():
            w.requires_grad_(True)
    elif cfg.lora and soft is None:
        pass  # apply_lora froze the base already
    elif cfg.lora:
        from ..models.lora import lora_parameters

        for w in lora_parameters(model):  # attach_soft_prompt froze them with the base
            w.requires_grad_(True)
    trainable = sum(w.numel() for w in {id(w): w for w in model.parameters()}.values()
                    if w.requires_grad)  # fmt: skip
    parent_info = start.parent_info
    if ctx.is_main:
        write_run_files(out, cfg, p.tok)
        origin = origin_note(start)
        print0(
            f"prompt-tune: {p.arch} ({n_params / 1e6:.2f}M parameters), {method_of(cfg)}: "
            f"{trainable:,} trainable, task {p.task.name}: "
            f"{len(p.train_rows):,} train / {len(p.test_rows):,} test examples, labels "
            f"{', '.join(p.labels)}; {origin}"
        )
    test = SoftPromptBatches(p.test_rows, cfg.batch_size, p.pad_id, rank=ctx.rank,
                             world_size=ctx.world_size, shuffle=False)  # fmt: skip
    test_batches = test.eval_batches()

    def evaluator(m: torch.nn.Module) -> dict[str, float]:
        loss, _ = mean_loss(
            m, SFTObjective(), test_batches, device=ctx.device,
            all_reduce_sum=lambda t: D.all_reduce_sum(t, ctx),
        )  # fmt: skip
        return {"val_loss": loss}

    t0 = time.perf_counter()
    result = train(
        model,
        SFTObjective(),
        batches,
        cfg,
        run_dir=out,
        ctx=ctx,
        evaluator=evaluator if test_batches else None,
        resume=start.resume,
        extra_state={
            "stage": STAGE,
            "tokenizer_hash": p.tok.hash,
            "model": {"arch": p.arch, **dataclasses.asdict(p.mcfg)},
            "soft_prompt": {"n_before": cfg.n_before, "n_after": cfg.n_after, "init": cfg.init},
            "method": method_of(cfg),
            **({"parent": parent_info} if parent_info else {}),
        },
        desc="prompt-tune",
    )
    if ctx.is_main:
        wrote = ""
        if soft is not None:
            wrote = f"; wrote {save_soft_prompt(out / SOFT_PROMPT_FILE, soft, parent_info or {})}"
        model.eval()
        acc = label_accuracy(model, p, with_soft=True)
        zero = label_accuracy(model, p, with_soft=False) if soft is not None else None
        wall = time.perf_counter() - t0
        write_report(out, p, n_params, trainable, result, acc, zero, parent_info, wall)
        write_result(out, cfg, p, trainable, n_params, result, acc, wall)
        print0(
            f"prompt-tune ({method_of(cfg)}): step {result.step}, train loss "
            f"{result.train_loss:.4f}; test accuracy {_pct(acc)}"
            + (f" ({_pct(zero)} without the soft prompt)" if soft is not None else "")
            + wrote
        )
    return result


def method_of(cfg: PromptTuneConfig) -> str:
    """What is trained, in words: "20 soft tokens (10+10)", "LoRA r=8,...", "full", combos."""
    parts = []
    if cfg.n_before + cfg.n_after:
        parts.append(f"{cfg.n_before + cfg.n_after} soft tokens ({cfg.n_before}+{cfg.n_after})")
    if cfg.lora:
        parts.append(f"LoRA {cfg.lora}")
    if cfg.full:
        parts.append("full fine-tuning")
    return " + ".join(parts)


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM) in MB, where /proc has it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write_result(out: Path, cfg: PromptTuneConfig, p: _Prepared, trainable: int, n_params: int,
                 result: TrainResult, acc: float | None, wall_s: float) -> Path:  # fmt: skip
    """RUN/result.json: the numbers an experiment compares across methods."""
    import json

    from ..common import atomic_write_text

    doc = {
        "task": p.task.name,
        "method": method_of(cfg),
        "test_accuracy": acc,
        "test_examples": len(p.test_rows),
        "trainable_params": trainable,
        "total_params": n_params,
        "steps": result.step,
        "train_loss": result.train_loss,
        "wall_s": round(wall_s, 2),
        "peak_rss_mb": peak_rss_mb(),
    }
    path = out / RESULT_FILE
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def label_accuracy(model: torch.nn.Module, p: _Prepared, *, with_soft: bool) -> float | None:
    """Accuracy on the test rows by label scoring (with the soft tokens around each query,
    or the bare query)."""
    if not p.test_rows:
        return None
    prompts, gold = [], []
    for r in p.test_rows:
        ids = list(r.ids[: len(r.ids) - r.n_label])  # before + query + after
        if not with_soft:
            ids = ids[p.layout.n_before : len(ids) - p.layout.n_after]
        prompts.append(ids)
        gold.append(tuple(r.ids[len(r.ids) - r.n_label :]))
    from ..prompting.scoring import score_labels

    names = list(p.labels)
    by_ids = {tuple(v): k for k, v in p.labels.items()}
    # The main label word of each label, as trained; one prefill per prompt for all labels.
    pred = score_labels(model, prompts, [[p.labels[n]] for n in names], names).predictions()
    return sum(by_ids[g] == y for g, y in zip(gold, pred)) / len(pred)


def write_report(out: Path, p: _Prepared, n_params: int, trainable: int, result: TrainResult,
                 acc: float | None, zero: float | None, parent: dict | None,
                 wall_s: float) -> Path:  # fmt: skip
    """RUN/report.md of a prompt-tune run."""
    from ..eval.report import md_table, result_rows, write_report

    res = dataclasses.asdict(result)
    lines = [
        f"# Prompt-tuning report: {p.arch}, task {p.task.name}",
        "",
        f"{method_of(p.cfg)} on the model of `{(parent or {}).get('run', '?')}` (step "
        f"{(parent or {}).get('step', '?')})"
        + (
            f"; `{SOFT_PROMPT_FILE}` holds the soft tokens."
            if p.cfg.n_before + p.cfg.n_after
            else "."
        ),
        "",
        "## Result",
        "",
        md_table(
            [
                ("test accuracy (label scoring, with the soft prompt)", _pct(acc)),
                ("test accuracy (the same model without the soft prompt)", _pct(zero)),
                ("what is trained", method_of(p.cfg)),
                ("trainable parameters", trainable),
                *result_rows(res, n_params, wall_s, "label tokens trained", " (per token)"),
            ]
        ),
        "",
        "![loss](plots/loss.png)",
        "",
        "## Task",
        "",
        md_table(
            [
                ("task", p.task.name),
                ("labels", ", ".join(f"{k} {p.task.label_text(k)!r}" for k in p.labels)),
                ("train examples", len(p.train_rows)),
                ("test examples", len(p.test_rows)),
                ("soft tokens before / after the input", f"{p.cfg.n_before} / {p.cfg.n_after}"),
                ("init", p.cfg.init),
            ]
        ),
        "",
    ]
    return write_report(out, lines, p.cfg)
