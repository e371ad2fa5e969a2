"""The size ladder: does few-shot prompting help only from some model size on?

`run_ladder(cfg)` builds, under ``cfg.out``::

    ladder_config.yaml   the LadderConfig (what marks the folder as a ladder)
    tokenizer/, data/    one BPE tokenizer and one train/val split of the world's
                         pretraining text, shared by every rung
    runs/<size>/         each rung's pretrain run folder
    rungs/<size>.json    a finished rung: parameters, training, every evaluation
    ladder.json          every rung, the evaluations and the verdict
    report.md, plots/ladder.png, plots/gain.png

Every rung is a LLaMA (`size_ladder_config.SIZES`) trained by the pretrain stage
with the same data order, seed, schedule and **the same wall-time budget**
(``seconds_per_model``; optionally also a step cap): the budget rule of a CPU
that has minutes, under which a larger model sees fewer tokens. Each is then
evaluated zero-, one- and few-shot (``k``) on the world's LAMBADA-style set
(`prompting.cloze`: greedy last word and the candidate choice), its
TriviaQA-style set (exact match) and its sentiment set (label scoring through
`prompting.evaluate.run_fewshot`), the same test items and shown-example draws
for every rung.

Resuming (``resume``): a rung with ``rungs/<size>.json`` is skipped; a rung whose
run has a checkpoint continues it through the stage's own resume (bitwise, the
budget counted across the interruption); a run killed before its first
checkpoint starts over. The tokenizer and data are reused when complete (both
are written atomically). The saved config must match the new one except for
``sizes`` (rungs may be added), ``resume``/``force``, ``threads`` and ``device``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text, print0
from ..config import read_yaml, save_config, to_dict
from .size_ladder_config import LadderConfig, parse_size

CONFIG_FILE = "ladder_config.yaml"
RESULT_FILE = "ladder.json"
RUNGS = "rungs"
# Fields that may change between an interrupted ladder and its --resume.
MAY_CHANGE = ("sizes", "resume", "force", "threads", "device")


def run_ladder(cfg: LadderConfig) -> dict[str, Any]:
    """Run (or continue) the ladder as `cfg` says; returns (and writes) the ladder.json payload."""
    import torch

    from ..outputs import RunLock

    world = _check_world(Path(cfg.world), cfg.evals)
    sets = _open_sets(cfg, world)  # bad data or a k too large fail before anything is written
    out = Path(cfg.out)
    _claim_out(out, cfg, world)
    with RunLock(out):
        save_config(cfg, out / CONFIG_FILE)
        torch.set_num_threads(cfg.threads)
        data = _prepare(cfg, world, out)
        _check_prompt_lengths(cfg, out / "tokenizer", sets)
        rungs = []
        for name in cfg.sizes:
            done = out / RUNGS / f"{name}.json"
            if done.is_file():
                print0(f"ladder: {name}: finished earlier, kept ({done})")
                rungs.append(json.loads(done.read_text(encoding="utf-8")))
                continue
            trained = _pretrain(cfg, name, data, out / "runs" / name)
            print0(f"ladder: {name}: evaluating ...")
            rung = _evaluate(cfg, name, out / "runs" / name, sets, trained)
            atomic_write_text(done, json.dumps(rung, indent=1) + "\n")
            rungs.append(rung)
        from .size_ladder_report import verdicts, write_outputs

        result = {
            "world": str(world),
            "config": to_dict(cfg),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "budget_rule": budget_rule(cfg),
            "rungs": rungs,
        }
        result["verdicts"] = verdicts(result)
        write_outputs(result, out)
    return result


def budget_rule(cfg: LadderConfig) -> str:
    cap = f", at most {cfg.steps_per_model} steps" if cfg.steps_per_model else ""
    return (
        f"every rung pretrains for {cfg.seconds_per_model:g} s of wall time{cap} on the same "
        f"data order (seed {cfg.seed}), batch {cfg.batch_size} × {cfg.context} tokens, peak lr "
        f"{cfg.lr:g} (cosine on elapsed time, warmup {cfg.warmup} steps), {cfg.threads} CPU "
        "thread(s): a larger rung sees fewer tokens"
    )


# ---------------------------------------------------------------------------
# The folder


def is_ladder(out: Path) -> bool:
    if not (out / CONFIG_FILE).is_file():
        return False
    try:
        saved = read_yaml(out / CONFIG_FILE)
    except LmforgeError:
        return False
    return {"world", "sizes", "seconds_per_model"} <= set(saved)


def _claim_out(out: Path, cfg: LadderConfig, world: Path) -> None:
    """A new ladder, the one in `out` continued (resume), or replaced (force)."""
    from ..outputs import check_not_overlapping, check_out

    check_not_overlapping(out, [("world", world)])
    if cfg.resume:
        if not out.exists() or not any(out.iterdir()):
            raise LmforgeError(
                f"--out {out}: holds no ladder to resume; drop --resume to start one"
            )
        if not is_ladder(out):
            raise LmforgeError(
                f"--out {out}: is not a ladder ({CONFIG_FILE} missing); cannot resume it"
            )
        saved = read_yaml(out / CONFIG_FILE)
        now = to_dict(cfg)
        diff = [k for k in now if k not in MAY_CHANGE and saved.get(k) != now[k]]
        if diff:
            k = diff[0]
            raise LmforgeError(
                f"{out / CONFIG_FILE}: the ladder was started with {k}={saved.get(k)!r}, now "
                f"{now[k]!r}; resume with the same settings (only {', '.join(MAY_CHANGE)} may "
                "change) or pass --force to start over"
            )
        return
    if not cfg.force and is_ladder(out):
        raise LmforgeError(
            f"--out {out}: already holds a size ladder; pass --resume to continue it or --force "
            "to start over"
        )
    check_out(out, force=cfg.force, made_here=is_ladder, what="size ladder")
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _check_world(world: Path, evals: list[str]) -> Path:
    need = [world / "pretrain" / "train.txt"]
    need += [
        world / {"lambada": "long_range", "trivia": "trivia"}[e] for e in evals if e != "sentiment"
    ]
    if "sentiment" in evals:
        need.append(world / "classification" / "sentiment")
    for p in need:
        if not p.exists():
            raise LmforgeError(
                f"{p}: not found; --world must be a folder made by `lmforge world` (one built "
                "before long_range/ and trivia/ existed needs rebuilding with --force)"
            )
    return world


def _prepare(cfg: LadderConfig, world: Path, out: Path) -> Path:
    """One tokenizer and one data split for every rung (each reused once complete)."""
    from ..data.prepare import prepare
    from ..data.prepare_config import PrepareConfig
    from ..tokenizers.train import TokenizerConfig, save_tokenizer_dir, train_tokenizer

    text = world / "pretrain" / "train.txt"
    tok_dir = out / "tokenizer"
    if not (tok_dir / "lmforge.json").is_file():
        shutil.rmtree(tok_dir, ignore_errors=True)
        tok = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=cfg.vocab_size), [text])
        save_tokenizer_dir(tok, tok_dir)
    data = out / "data"
    if not (data / "meta.json").is_file():
        shutil.rmtree(data, ignore_errors=True)
        prepare(
            PrepareConfig(
                tokenizer=str(tok_dir),
                input=[str(text)],
                out=str(data),
                val_fraction=0.05,
                seed=cfg.seed,
                workers=cfg.threads,
            )  # fmt: skip
        )
    return data


# ---------------------------------------------------------------------------
# One rung


def swiglu_width(d_model: int) -> int:
    """LLaMA's 8/3 d SwiGLU width, rounded up to a multiple of 8 (not 256: small widths)."""
    return 8 * math.ceil(8 * d_model / 3 / 8)


def pretrain_config(cfg: LadderConfig, name: str, data: Path, run_dir: Path):
    """The rung's PretrainConfig: only the shape differs between rungs."""
    from ..stages.pretrain_config import ModelOverrides, PretrainConfig

    n_layer, d_model, n_head = parse_size(name)
    return PretrainConfig(
        arch="llama",
        preset="tiny",  # tied embeddings; every shape field is overridden below
        data=str(data),
        out=str(run_dir),
        seq_len=cfg.context,
        batch_size=cfg.batch_size,
        max_steps=cfg.steps_per_model,
        max_time=cfg.seconds_per_model,
        lr=cfg.lr,
        min_lr=cfg.lr / 10,
        warmup=cfg.warmup,
        schedule="cosine",
        dtype="fp32",
        eval_every=0,  # validation once, at the end
        eval_batches=8,
        save_every=cfg.save_every,
        log_every=10,
        seed=cfg.seed,
        device=cfg.device,
        threads=cfg.threads,
        samples=0,
        model=ModelOverrides(
            n_layer=n_layer,
            n_head=n_head,
            d_model=d_model,
            d_ff=swiglu_width(d_model),
            block_size=cfg.context,
        ),  # fmt: skip
    )


def _pretrain(cfg: LadderConfig, name: str, data: Path, run_dir: Path) -> dict[str, Any]:
    """Train the rung, continuing its run if it has a checkpoint; returns what it reached."""
    import dataclasses

    from ..runs.checkpoint import list_checkpoints
    from ..stages.pretrain import pretrain

    pcfg = pretrain_config(cfg, name, data, run_dir)
    resume = bool(list_checkpoints(run_dir))
    if run_dir.exists() and not resume:
        pcfg = dataclasses.replace(pcfg, force=True)  # killed before its first checkpoint
    if resume:
        print0(f"ladder: {name}: continuing {run_dir} from its last checkpoint")
    else:
        print0(f"ladder: {name}: pretraining for {cfg.seconds_per_model:g} s ...")
    t0 = time.perf_counter()
    res = pretrain(pcfg, resume=resume)
    return {
        "steps": res.step,
        "tokens_seen": res.tokens_seen,
        "train_s": res.elapsed_s,
        "stop_reason": res.stop_reason,
        "resumed": resume,
        "wall_s": time.perf_counter() - t0,
        "val_loss": _last_val_loss(run_dir),
    }


def _last_val_loss(run_dir: Path) -> float | None:
    from ..runs import RunLayout
    from ..train.metrics import read_metrics

    vals = [r["val_loss"] for r in read_metrics(RunLayout(run_dir).metrics) if "val_loss" in r]
    return float(vals[-1]) if vals else None


def _open_sets(cfg: LadderConfig, world: Path) -> dict[str, Any]:
    """Every evaluation's data, opened once (a bad file fails before any training)."""
    from ..prompting.cloze import check_plan as check_cloze
    from ..prompting.cloze_data import load_cloze_set
    from ..prompting.evaluate import check_plan as check_fewshot
    from ..prompting.tasks import load_task

    sets: dict[str, Any] = {}
    for name in cfg.evals:
        if name == "sentiment":
            sets[name] = load_task("sentiment", world=world)
            check_fewshot(sets[name], _fewshot_config(cfg))
        else:
            sets[name] = load_cloze_set(name, world=world)
            check_cloze(sets[name], _cloze_config(cfg))
    return sets


def _check_prompt_lengths(cfg: LadderConfig, tok_dir: Path, sets: dict[str, Any]) -> None:
    """Every prompt of every evaluation fits the rungs' context: one line before training."""
    from ..prompting.builder import PromptBuilder, take_test
    from ..prompting.cloze import check_prompts
    from ..prompting.evaluate import draw_demos
    from ..tokenizers import Tokenizer

    tok = Tokenizer.load(tok_dir)
    for name, data in sets.items():
        if name != "sentiment":
            check_prompts(cfg.context, tok, data, _cloze_config(cfg))
            continue
        fcfg = _fewshot_config(cfg)
        builder = PromptBuilder(data, tok)
        label = max(len(ids) for words in builder.label_ids() for ids in words)
        test = take_test(data, fcfg.limit)
        for seed in range(fcfg.first_seed, fcfg.first_seed + fcfg.seeds):
            demos, _ = draw_demos(data, max(fcfg.k), seed, fcfg)
            longest = max(len(p.ids) for p in builder.build_many(demos, test))
            if longest + label - 1 > cfg.context:
                raise LmforgeError(
                    f"sentiment: a {max(fcfg.k)}-shot prompt has {longest} tokens, more than "
                    f"the rungs' context of {cfg.context}; use a smaller --k or a larger "
                    "--context"
                )


def _sentiment_record(res: Any, task: Any, kmax: int) -> dict[str, Any]:
    """Accuracy and the gold label's log-probability (over the labels) per k, with the
    paired few- minus zero-shot gains over the same test examples."""
    import math

    from ..prompting.cloze import LOGPROB, paired_difference
    from ..prompting.metrics import spread

    def per_item(e) -> dict[str, list[float]]:
        gold = [task.labels.index(ex.label) for ex in e.test]
        probs = e.scores.probs
        return {
            "accuracy": [float(p == ex.label) for p, ex in zip(e.preds, e.test)],
            LOGPROB: [math.log(max(float(probs[i, g]), 1e-30)) for i, g in enumerate(gold)],
        }

    values = [(e.k, per_item(e)) for e in res.evals]
    rows = []
    for k in dict.fromkeys(k for k, _ in values):
        draws = [v for kk, v in values if kk == k]
        row: dict[str, Any] = {"k": k, "seeds": len(draws)}
        for m in ("accuracy", LOGPROB):
            row[m] = spread([sum(d[m]) / len(d[m]) for d in draws])
        rows.append(row)
    gains = {}
    if kmax:
        for m in ("accuracy", LOGPROB):
            base = [v[m] for k, v in values if k == 0]
            few = [v[m] for k, v in values if k == kmax]
            g = paired_difference(base, few) if base and few else None
            gains[m] = None if g is None else {"k": kmax, "base_k": 0, **g}
    return {"metrics": ["accuracy", LOGPROB], "test": len(res.evals[0].test), "rows": rows,
            "gains": gains}  # fmt: skip


def _fewshot_config(cfg: LadderConfig):
    from ..prompting.evaluate import FewShotConfig

    return FewShotConfig(k=list(cfg.k), seeds=cfg.seeds, limit=cfg.limit)


def _cloze_config(cfg: LadderConfig):
    from ..prompting.cloze import ClozeConfig

    return ClozeConfig(k=list(cfg.k), seeds=cfg.seeds, limit=cfg.limit)


def _evaluate(cfg, name, run_dir: Path, sets: dict[str, Any], trained: dict) -> dict[str, Any]:
    """The rung's record: shape, parameters, training and every evaluation's summary."""
    from ..prompting.builder import PromptBuilder
    from ..prompting.cloze import run_cloze
    from ..prompting.evaluate import run_fewshot
    from ..runs import load_run
    from .lineage_neural import count_params

    n_layer, d_model, n_head = parse_size(name)
    run = load_run(run_dir, need="decoder", device=cfg.device)
    model, tok = run.model, run.tokenizer
    t0 = time.perf_counter()
    evals: dict[str, Any] = {}
    kmax = max(cfg.k)
    for ev, data in sets.items():
        if ev == "sentiment":
            builder = PromptBuilder(data, tok)
            res = run_fewshot(model, builder, _fewshot_config(cfg), show_progress=False)
            evals[ev] = _sentiment_record(res, data, kmax)
            continue
        res = run_cloze(model, tok, data, _cloze_config(cfg), show_progress=False)
        names = [n for _, n in res.metrics()]
        rows = []
        for r in res.summary():
            row = {"k": r["k"], "seeds": r["seeds"], **{n: r[n] for n in names}}
            if ev == "lambada":
                row["accuracy by distance"] = r["accuracy by distance"]
            rows.append(row)
        gains = {n: res.paired_gain(f, kmax) for f, n in res.metrics()} if kmax else {}
        evals[ev] = {"metrics": names, "test": len(res.set.test), "rows": rows, "gains": gains}
    emb = model.tok_emb.weight.numel() if hasattr(model, "tok_emb") else None
    return {
        "name": name,
        "n_layer": n_layer,
        "d_model": d_model,
        "n_head": n_head,
        "params": count_params(model),
        "embedding_params": emb,
        "train": trained,
        "eval_s": time.perf_counter() - t0,
        "evals": evals,
    }
