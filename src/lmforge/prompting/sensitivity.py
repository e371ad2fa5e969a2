"""Sensitivity experiments: how few-shot accuracy moves with k, example order, prompt format,
and the recency and majority-label biases, each with and without contextual calibration.

Every experiment is a loop over `evaluate.evaluate_demos` with ONE loaded model and
returns a `Sweep`: plain `Trial`s (one per evaluated prompt: its k, seed, format,
the labels of its shown examples in order, accuracy, macro-F1 and predicted-label
shares per variant) plus the points it skipped and why, so a table and a plot are
made from it without the model (`lmforge.prompting.sensitivity_report`).

* `sweep_k`: k = ``cfg.k`` (e.g. 0, 1, 4, 8, 16) x seeds. A k whose prompts do not
  fit the model's context (at any seed), or that is larger than the train set, is
  skipped with the reason instead of failing the sweep;
* `sweep_permutations`: per k and seed, the same k examples in ``cfg.permutations``
  distinct orders (`builder.permutations`; the first is the drawn order);
* `sweep_formats`: every format of ``--fmt`` (``all`` or a list) with the same
  examples per seed (the draw depends on the seed and the labels only);
* `probe_recency`: the examples of each label in a block, the blocks rotated so
  that each label is last once: ``pos,pos,neg,neg`` and ``neg,neg,pos,pos`` for two
  labels (``cfg.probe_per_label`` each, default 2), ``food,weather,music,sports`` ...
  for more (one each); per seed every order shows the same examples. Reported: the
  share of predictions equal to the last example's label beside that label's
  share of the gold labels (its base rate);
* `probe_majority`: ``cfg.probe_majority`` (3) examples of one label and one of
  each other label, the minority block at every position (``neg,pos,pos,pos`` ...
  ``pos,pos,pos,neg``); reported: the share of predictions equal to the majority
  label beside its base rate.

`Sweep.summary()` gives the rows of its table (spread = mean, std, min, max over
what varies), `Sweep.headline()` the few numbers a reader wants first (mean
accuracy and mean spread per variant; for the probes the mean share, the mean base
rate and the *gap*: how much more often a label is predicted when it is last, or
the majority, than when it is not; ``prob_gap`` is the same with the label's mean
probability, which moves even when one label wins every argmax). `run_sweeps` runs
the sweeps ``cfg.sweep`` names; `Sweep.from_dict` reads one back from results.json.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import torch

from ..common import LmforgeError, progress
from .builder import PromptBuilder, permutations, sample_indices, take_test
from .evaluate import (
    AFFINE_SEED_OFFSET,
    DemoEval,
    FewShotConfig,
    PromptDoesNotFit,
    draw_demos,
    evaluate_demos,
)
from .sensitivity_results import (  # noqa: F401 (re-exported: the sweeps return these)
    VARIANTS,
    Skip,
    Sweep,
    Trial,
    _mean,
    _mean_tokens,
    base_rates,
    probe_label,
)
from .tasks import ClassificationTask, Example, PromptFormat

# ---------------------------------------------------------------------------
# One trial


def _mean_probs(e: DemoEval, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """variant -> label -> mean label probability over the test examples."""
    probs = {"uncalibrated": e.probs}
    if e.calibrated is not None:
        probs["calibrated"] = e.calibrated.probs
    if e.affine is not None:
        probs["affine"] = e.affine.probs
    return {
        v: dict(zip(labels, [float(x) for x in p.double().mean(dim=0).tolist()]))
        for v, p in probs.items()
        if p is not None
    }


def trial_of(e: DemoEval, fmt: str, *, perm: int = -1, probe: str = "") -> Trial:
    """A `Trial` from an evaluation (every variant it has)."""
    labels = e.scores.labels if e.scores is not None else []
    got = {"uncalibrated": (e.preds, e.metrics)}
    if e.calibrated is not None:
        got["calibrated"] = (e.calibrated.preds, e.calibrated.metrics)
    if e.affine is not None:
        got["affine"] = (e.affine.preds, e.affine.metrics)
    return Trial(
        k=e.k, seed=e.seed, fmt=fmt, order=[d.label for d in e.demos],
        demos=[d.where for d in e.demos],
        accuracy={v: m.accuracy for v, (_, m) in got.items()},
        macro_f1={v: m.macro_f1 for v, (_, m) in got.items()},
        predicted_share={v: m.predicted_share() for v, (_, m) in got.items()},
        mean_prob=_mean_probs(e, labels),
        preds={v: list(p) for v, (p, _) in got.items()}, perm=perm,
        p_cf=None if e.p_cf is None else [float(x) for x in e.p_cf.tolist()],
        prompt_tokens=e.prompt_tokens, probe=probe,
    )  # fmt: skip


def fit_reason(
    model: torch.nn.Module,
    builder: PromptBuilder,
    prompts: Sequence[Any],
    *,
    k: int,
    seed: int,
    extra: Sequence[Any] = (),
) -> str | None:
    """Why these prompts (and `extra` ones: content-free, affine fit) do not fit the model's
    context, naming the longest and the limit; None when they all fit."""
    limit = getattr(model, "max_seq_len", None)
    if not limit:
        return None
    label_extra = max(len(ids) for words in builder.label_ids() for ids in words) - 1
    every = [*prompts, *extra]
    worst = max(range(len(every)), key=lambda i: len(every[i].ids))
    n = len(every[worst].ids)
    if n + label_extra <= int(limit):
        return None
    q = every[worst].query
    where = f" ({q.where})" if q is not None and q.where else ""
    return (
        f"k={k}, seed {seed}: the longest prompt{where} has {n} tokens (+{label_extra + 1} "
        f"label token{'s' if label_extra else ''}), more than the model's context of "
        f"{int(limit)} tokens"
    )


class _Runner:
    """What every sweep shares: the model, the config (calibration on), the test examples."""

    def __init__(self, model, cfg: FewShotConfig, test: Sequence[Example], bar=None):
        self.model = model
        self.cfg = dataclasses.replace(cfg, calibrate=True)
        self.test = list(test)
        self.bar = bar

    def seeds(self) -> range:
        return range(self.cfg.first_seed, self.cfg.first_seed + self.cfg.seeds)

    def new_sweep(self, name: str, task: ClassificationTask) -> Sweep:
        return Sweep(name, task.name, list(task.labels), base_rates(self.test, task.labels),
                     len(self.test))  # fmt: skip

    def draw(self, task: ClassificationTask, k: int, seed: int, order: Sequence[str] = ()):
        """(demos, affine fit set); with `order` (labels) see `probe_demos`."""
        if not order:
            return draw_demos(task, k, seed, self.cfg)
        fit = []
        if self.cfg.affine:
            fit = sample_indices(task, self.cfg.affine, seed=seed + AFFINE_SEED_OFFSET)
        demos = probe_demos(task, order, seed, exclude=fit)
        return demos, [task.train[i] for i in fit]

    def evaluate(self, builder: PromptBuilder, demos, fit, seed: int) -> DemoEval | str:
        """The evaluation, or the reason it does not fit the context."""
        prompts = builder.build_many(demos, self.test)
        extra = builder.content_free(demos, self.cfg.content_free)
        if fit:
            extra = [*extra, *builder.build_many(demos, fit)]
        reason = fit_reason(self.model, builder, prompts, k=len(demos), seed=seed, extra=extra)
        if reason is not None:
            return reason
        try:
            e = evaluate_demos(
                self.model, builder, demos, self.test, self.cfg, seed=seed, affine_set=fit,
                prompts=prompts,
            )  # fmt: skip
        except PromptDoesNotFit as err:  # a model without max_seq_len that still refuses
            return str(err)
        if self.bar is not None:
            self.bar.update(1)
        return e


def probe_demos(
    task: ClassificationTask, order: Sequence[str], seed: int, *, exclude: Sequence[int] = ()
) -> list[Example]:
    """One train example per entry of `order` (label names): the i-th `L` of any order is
    the same example for a seed, so orders of the same labels show the same examples.

    (`builder.demos_for_labels` shuffles its pools in the order labels first appear,
    so ``pos,pos,neg,neg`` and ``neg,neg,pos,pos`` would draw different examples.)
    """
    rng = random.Random(seed)
    skip = set(exclude)
    pools = {}
    for label in task.labels:  # a fixed order: the draw must not depend on `order`
        pool = [i for i, ex in enumerate(task.train) if ex.label == label and i not in skip]
        rng.shuffle(pool)
        pools[label] = pool
    seen: dict[str, int] = {}
    out = []
    for label in order:
        i = seen.get(label, 0)
        if i >= len(pools[label]):
            raise LmforgeError(
                f"order: label {label!r} appears {list(order).count(label)} times but task "
                f"{task.name}'s train set has only {len(pools[label])} examples of it to show"
            )
        out.append(task.train[pools[label][i]])
        seen[label] = i + 1
    return out


def _builder_like(builder: PromptBuilder, task: ClassificationTask) -> PromptBuilder:
    """A builder of `task` (another format) with the same tokenizer and start token."""
    b = PromptBuilder(task, builder.tokenizer, special_template=builder.special_template)
    b.start_ids = list(builder.start_ids)
    return b


# ---------------------------------------------------------------------------
# The sweeps


def _check_k(task: ClassificationTask, k: int) -> str | None:
    """Why `k` examples cannot be drawn from the train set, or None."""
    if k > len(task.train):
        return f"k={k}: larger than the train set of task {task.name} ({len(task.train)} examples)"
    return None


def sweep_k(model, builder: PromptBuilder, test: Sequence[Example], cfg: FewShotConfig,
            *, bar=None) -> Sweep:  # fmt: skip
    """Accuracy for every k of ``cfg.k`` and every seed (k = 0 once: it has no examples)."""
    run = _Runner(model, cfg, test, bar)
    task = builder.task
    sweep = run.new_sweep("k", task)
    for k in cfg.k:
        reason = _check_k(task, k)
        if reason is not None:
            sweep.skipped.append(Skip(k, task.format.name, reason))
            continue
        seeds = run.seeds() if k or cfg.affine else run.seeds()[:1]
        trials = []
        for seed in seeds:
            demos, fit = run.draw(task, k, seed)
            got = run.evaluate(builder, demos, fit, seed)
            if isinstance(got, str):  # one seed does not fit: the whole k goes
                sweep.skipped.append(Skip(k, task.format.name, got))
                trials = []
                break
            trials.append(trial_of(got, task.format.name))
        sweep.trials.extend(trials)
    return sweep


def sweep_permutations(model, builder: PromptBuilder, test: Sequence[Example],
                       cfg: FewShotConfig, *, bar=None) -> Sweep:  # fmt: skip
    """Per k (> 1) and seed: the same examples in ``cfg.permutations`` orders."""
    run = _Runner(model, cfg, test, bar)
    task = builder.task
    sweep = run.new_sweep("permutations", task)
    for k in cfg.k:
        reason = _check_k(task, k)
        if k < 2:
            reason = f"k={k}: {'no examples have' if k == 0 else 'one example has'} one order"
        if reason is not None:
            sweep.skipped.append(Skip(k, task.format.name, reason))
            continue
        trials = []
        for seed in run.seeds():
            demos, fit = run.draw(task, k, seed)
            for p, order in enumerate(permutations(demos, cfg.permutations, seed=seed)):
                got = run.evaluate(builder, order, fit, seed)
                if isinstance(got, str):
                    break
                trials.append(trial_of(got, task.format.name, perm=p))
            if isinstance(got, str):
                sweep.skipped.append(Skip(k, task.format.name, got))
                trials = []
                break
        sweep.trials.extend(trials)
    return sweep


def format_list(task: ClassificationTask, spec: str) -> list[PromptFormat]:
    """The formats of ``--fmt``: ``all``, or a comma list of indices / names."""
    if spec.strip() == "all":
        return list(task.formats)
    return [task.find_format(x.strip()) for x in spec.split(",") if x.strip()]


def sweep_formats(model, builder: PromptBuilder, test: Sequence[Example], cfg: FewShotConfig,
                  formats: Sequence[PromptFormat], *, bar=None) -> Sweep:  # fmt: skip
    """Every format of `formats` x seeds, the same examples per seed (k = ``cfg.k[0]``...)."""
    run = _Runner(model, cfg, test, bar)
    base = builder.task
    sweep = run.new_sweep("formats", base)
    for k in cfg.k:
        reason = _check_k(base, k)
        if reason is not None:
            sweep.skipped.append(Skip(k, "", reason))  # every format
            continue
        for f in formats:
            task = base.with_format(f)
            b = _builder_like(builder, task)
            b.label_ids()  # a label word of this format that tokenizes to nothing: refused
            trials = []
            for seed in run.seeds() if k or cfg.affine else run.seeds()[:1]:
                demos, fit = run.draw(task, k, seed)
                got = run.evaluate(b, demos, fit, seed)
                if isinstance(got, str):
                    sweep.skipped.append(Skip(k, f.name, got))
                    trials = []
                    break
                trials.append(trial_of(got, f.name))
            sweep.trials.extend(trials)
    return sweep


def recency_orders(labels: Sequence[str], per_label: int = 0) -> list[list[str]]:
    """Label blocks rotated so that each label is last once (module doc).

    ``["neg", "pos"]`` -> ``[[pos, pos, neg, neg], [neg, neg, pos, pos]]``.
    """
    C = len(labels)
    n = per_label or (2 if C == 2 else 1)
    out = []
    for j in range(C):
        blocks = [labels[(j + 1 + i) % C] for i in range(C)]  # ends with labels[j]
        out.append([x for x in blocks for _ in range(n)])
    return out


def majority_orders(labels: Sequence[str], count: int = 3) -> list[tuple[str, int, list[str]]]:
    """(majority label, minority position, order): `count` of one label, one of each other,
    the others' block at every position 0..count."""
    out = []
    for m in labels:
        others = [x for x in labels if x != m]
        for p in range(count + 1):
            out.append((m, p, [m] * p + others + [m] * (count - p)))
    return out


def _probe(run: _Runner, builder: PromptBuilder, name: str,
           plan: Sequence[tuple[str, list[str]]]) -> Sweep:  # fmt: skip
    task = builder.task
    sweep = run.new_sweep(name, task)
    need = len(plan[0][1])
    reason = _check_k(task, need)
    if reason is None:
        for label in task.labels:
            most = max(order.count(label) for _, order in plan)
            have = sum(ex.label == label for ex in task.train)
            if have < most:
                reason = (
                    f"k={need}: the probe needs {most} train examples of label {label!r}; "
                    f"task {task.name} has {have}"
                )
                break
    if reason is not None:
        sweep.skipped.append(Skip(need, task.format.name, reason))
        return sweep
    for seed in run.seeds():
        for probe, order in plan:
            demos, fit = run.draw(task, len(order), seed, order)
            got = run.evaluate(builder, demos, fit, seed)
            if isinstance(got, str):
                sweep.skipped.append(Skip(len(order), task.format.name, got))
                sweep.trials = []
                return sweep
            sweep.trials.append(trial_of(got, task.format.name, probe=probe))
    return sweep


def probe_recency(model, builder: PromptBuilder, test: Sequence[Example], cfg: FewShotConfig,
                  *, bar=None) -> Sweep:  # fmt: skip
    """The share of predictions equal to the last example's label, per order (module doc)."""
    orders = recency_orders(builder.task.labels, cfg.probe_per_label)
    plan = [(f"last={o[-1]}", o) for o in orders]
    return _probe(_Runner(model, cfg, test, bar), builder, "recency", plan)


def probe_majority(model, builder: PromptBuilder, test: Sequence[Example], cfg: FewShotConfig,
                   *, bar=None) -> Sweep:  # fmt: skip
    """The share of predictions equal to the majority label, per order (module doc)."""
    plan = [(f"majority={m}@{p}", o) for m, p, o in
            majority_orders(builder.task.labels, cfg.probe_majority)]  # fmt: skip
    return _probe(_Runner(model, cfg, test, bar), builder, "majority", plan)


def planned_trials(task: ClassificationTask, cfg: FewShotConfig, n_formats: int) -> int:
    """About how many evaluations `run_sweeps` makes (for the progress bar)."""
    seeds = cfg.seeds
    n = 0
    for name in cfg.sweep:
        if name == "k":
            n += sum(seeds if k else 1 for k in cfg.k)
        elif name == "permutations":
            n += sum(seeds * cfg.permutations for k in cfg.k if k > 1)
        elif name == "formats":
            n += n_formats * sum(seeds if k else 1 for k in cfg.k)
        elif name == "recency":
            n += seeds * len(task.labels)
        elif name == "majority":
            n += seeds * len(task.labels) * (cfg.probe_majority + 1)
    return n


def run_sweeps(
    model: torch.nn.Module,
    builder: PromptBuilder,
    cfg: FewShotConfig,
    *,
    test: Sequence[Example] | None = None,
    show_progress: bool = True,
) -> list[Sweep]:
    """The sweeps ``cfg.sweep`` names, in that order, on the builder's task.

    The formats sweep uses the formats of ``cfg.fmt``; the others the builder's
    task's format (the first of the list). ``test``: default ``take_test(limit)``.
    """
    task = builder.task
    if not cfg.sweep:
        raise LmforgeError(
            "sweep: name at least one of k, permutations, formats, recency, majority"
        )
    builder.label_ids()  # a label word that tokenizes to nothing fails before any forward
    examples = list(test) if test is not None else take_test(task, cfg.limit)
    formats = format_list(task, cfg.fmt) if "formats" in cfg.sweep else []
    bar = None
    if show_progress:
        total = planned_trials(task, cfg, len(formats))
        bar = progress(total=total, desc=f"sweeps {task.name}", unit="prompt set")
    out = []
    try:
        for name in cfg.sweep:
            if name == "k":
                out.append(sweep_k(model, builder, examples, cfg, bar=bar))
            elif name == "permutations":
                out.append(sweep_permutations(model, builder, examples, cfg, bar=bar))
            elif name == "formats":
                out.append(sweep_formats(model, builder, examples, cfg, formats, bar=bar))
            elif name == "recency":
                out.append(probe_recency(model, builder, examples, cfg, bar=bar))
            elif name == "majority":
                out.append(probe_majority(model, builder, examples, cfg, bar=bar))
            else:
                raise LmforgeError(f"sweep: unknown {name!r}")
    finally:
        if bar is not None:
            bar.close()
    return out
