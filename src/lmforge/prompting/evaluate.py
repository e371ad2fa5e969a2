"""Few-shot evaluation of a model on a task: per (k, seed) draws, with and without calibration.

`evaluate_demos(model, builder, demos, test, cfg)` scores one set of shown
examples (in one order) on the test examples: label probabilities, predictions,
metrics; with ``cfg.calibrate`` also contextual calibration from the
content-free prompts of the same demos, with ``cfg.affine = n`` also the affine
map fitted on ``n`` labelled train examples that are not among the demos. It
takes everything that varies (demos, order, format via the builder's task) as
arguments, so sweeps over seeds, permutations and formats call it in a loop
without reloading anything.

`run_fewshot(model, builder, cfg)` is the sweep `lmforge fewshot` runs: for each
k in ``cfg.k`` and each seed, draw the demos (`draw_demos`), evaluate, and
summarise accuracy and macro-F1 across seeds (`FewShotResult.summary`). With
``cfg.sweep`` the verb runs the sensitivity experiments of
`lmforge.prompting.sensitivity` instead (k, permutations, formats and the recency
and majority probes), each with and without calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..common import ConfigError, LmforgeError, progress
from ..config import field_
from .builder import (
    CONTENT_FREE,
    STARTS,
    Prompt,
    PromptBuilder,
    demos_for_labels,
    order_demos,
    sample_indices,
    take_test,
)
from .calibration import AffineCalibration, ContextualCalibration
from .metrics import ClassificationMetrics, classification_metrics, spread
from .scoring import NORMALIZE, LabelScores, PromptTooLong, generate_answers, score_prompts
from .tasks import ClassificationTask, Example

SCORING = ("labels", "generate")
SWEEPS = ("k", "permutations", "formats", "recency", "majority")
SELECTIONS = ("balanced", "random")
AFFINE_SEED_OFFSET = 10_007  # the affine fit set's draw: its own stream, not the demos'


@dataclass
class FewShotConfig:
    """What `lmforge fewshot` evaluates and how (every field is a flag)."""

    k: list[int] = field_(
        default_factory=lambda: [4], help="shown examples per prompt; several as 0,1,4,8"
    )
    seeds: int = field_(3, help="example draws per k (seeds first_seed, first_seed+1, ...)", min=1)
    first_seed: int = field_(0, help="seed of the first draw")
    limit: int = field_(
        0, help="score this many test examples (a fixed seed-0 subset; 0: all)", min=0
    )
    fmt: str = field_("0", help="prompt format of the task: index or name")
    calibrate: bool = field_(False, help="also report contextual calibration (content-free inputs)")
    content_free: list[str] = field_(
        default_factory=lambda: list(CONTENT_FREE),
        help="content-free strings that replace the query's fields for calibration",
    )
    selection: str = field_("balanced", help="how the k examples are drawn", choices=SELECTIONS)
    order: str = field_(
        "random",
        help="order of the shown examples: random (by seed), given (as drawn), or one label "
        "per example, e.g. yes,yes,no,no (draws examples of those labels in that order)",
    )
    normalize: str = field_(
        "sum", help="a label's score: summed log p of its tokens, or the mean per token",
        choices=NORMALIZE,
    )  # fmt: skip
    affine: int = field_(
        0,
        help="also fit the affine calibration on this many labelled train examples, "
        "disjoint from the shown ones (0: off)",
        min=0,
    )
    scoring: str = field_(
        "labels",
        help="labels: compare label log-probabilities; generate: greedy answer, then extract",
        choices=SCORING,
    )
    max_new_tokens: int = field_(8, help="generate scoring: most new tokens per answer", min=1)
    answer_regex: str = field_(
        "", help="generate scoring: regex for the answer (its first group); default: first line"
    )
    batch_size: int = field_(16, help="prompts per forward", min=1)
    start: str = field_(
        "eos", help="token before the prompt: eos (as documents begin in pretraining), bos, none",
        choices=STARTS,
    )  # fmt: skip
    sweep: list[str] = field_(
        default_factory=list,
        help="sensitivity experiments instead of the k table, each with and without "
        "calibration: k (skips a k whose prompts do not fit), permutations (--permutations "
        "orders of the same examples), formats (the formats of --fmt all or a list), recency "
        "(examples ordered yes,yes,no,no vs no,no,yes,yes), majority (3 of one label, 1 of "
        "each other); several as k,permutations (default: none)",
    )
    permutations: int = field_(8, help="permutations sweep: orders of each draw's examples", min=1)
    probe_per_label: int = field_(
        0, help="recency probe: examples per label (0: 2 for two labels, else 1)", min=0
    )
    probe_majority: int = field_(3, help="majority probe: examples of the majority label", min=2)

    def label_order(self) -> list[str] | None:
        """The explicit label sequence of ``order``, or None for random/given."""
        if self.order in ("random", "given"):
            return None
        return [x.strip() for x in self.order.split(",") if x.strip()]

    def format_names(self) -> list[str] | None:
        """The formats of ``fmt`` when it lists several (``a,b``) or is ``all``; else None."""
        names = [x.strip() for x in self.fmt.split(",") if x.strip()]
        if self.fmt.strip() == "all" or len(names) > 1:
            return names
        return None

    def validate(self) -> None:
        self.sweep = [x.strip() for item in self.sweep for x in item.split(",") if x.strip()]
        bad = [x for x in self.sweep if x not in SWEEPS]
        if bad:
            raise ConfigError("sweep", f"got {bad[0]!r}; allowed: {', '.join(SWEEPS)}")
        if self.sweep:
            if self.scoring != "labels":
                raise ConfigError(
                    "scoring", "the sweeps compare label probabilities; use --scoring labels"
                )
            if self.label_order() is not None:
                raise ConfigError(
                    "order", "a label list is for one evaluation; with --sweep use random or "
                    "given (the recency and majority probes choose their own orders)",
                )  # fmt: skip
            if not self.content_free:
                raise ConfigError(
                    "content_free", "the sweeps calibrate: give a content-free string"
                )
        if self.format_names() is not None and "formats" not in self.sweep:
            raise ConfigError(
                "fmt", f"{self.fmt!r} names several formats; that is --sweep formats "
                "(or give one format)",
            )  # fmt: skip
        if "formats" in self.sweep and self.format_names() is None:
            raise ConfigError(
                "fmt", f"--sweep formats compares formats: give --fmt all or a list such as "
                f"0,2 (got {self.fmt!r})",
            )  # fmt: skip
        if any(k < 0 for k in self.k):
            raise ConfigError("k", f"must be 0 or more, got {self.k}")
        if not self.k:
            raise ConfigError("k", "give at least one k")
        if self.scoring == "generate" and (self.calibrate or self.affine):
            raise ConfigError(
                "scoring", "calibration needs label probabilities; use --scoring labels"
            )
        if self.calibrate and not self.content_free:
            raise ConfigError("content_free", "calibration needs at least one content-free string")
        seq = self.label_order()
        if seq is not None and not self.sweep:
            if not seq:
                raise ConfigError("order", "give random, given or a comma-separated label list")
            bad = [k for k in self.k if k != len(seq)]
            if bad:
                raise ConfigError(
                    "order", f"lists {len(seq)} labels but k is {bad[0]}; give k={len(seq)}"
                )


@dataclass
class Calibrated:
    """One calibration's probabilities, predictions and metrics."""

    probs: torch.Tensor  # (N, C)
    preds: list[str]
    metrics: ClassificationMetrics


@dataclass
class DemoEval:
    """The evaluation of one set of shown examples on the test examples."""

    k: int
    seed: int
    demos: list[Example]
    test: list[Example]
    preds: list[str | None]
    metrics: ClassificationMetrics
    scores: LabelScores | None = None  # label scoring
    answers: list[Any] | None = None  # generate scoring: scoring.Answer per example
    p_cf: torch.Tensor | None = None
    calibrated: Calibrated | None = None
    affine: Calibrated | None = None
    prompt_tokens: float = 0.0  # mean prompt length

    @property
    def probs(self) -> torch.Tensor | None:
        return None if self.scores is None else self.scores.probs

    def last_label_share(self, variant: str = "uncalibrated") -> float | None:
        """Share of predictions equal to the last shown example's label (recency bias)."""
        if not self.demos:
            return None
        preds = {"uncalibrated": self.preds}.get(variant)
        if preds is None:
            cal = self.calibrated if variant == "calibrated" else self.affine
            preds = cal.preds
        last = self.demos[-1].label
        return sum(p == last for p in preds) / len(preds)


class PromptDoesNotFit(LmforgeError):
    """A prompt of a draw is longer than the model's context (the message names it)."""


def _score(model, builder: PromptBuilder, prompts: Sequence[Prompt], cfg, what: str, k, seed):
    """`score_prompts`, with a too-long prompt named by its example."""
    try:
        return score_prompts(
            model, builder, prompts, normalize=cfg.normalize, batch_size=cfg.batch_size
        )
    except PromptTooLong as e:
        q = prompts[e.index].query
        which = f"{what} {e.index}" + (f" ({q.where})" if q is not None and q.where else "")
        raise PromptDoesNotFit(
            f"task {builder.task.name}, k={k}, seed {seed}: the prompt of {which} has "
            f"{e.prompt_len} tokens (+{e.choice_len} label tokens), more than the model's "
            f"context of {e.limit} tokens; use a smaller --k or shorter examples"
        ) from None


def evaluate_demos(
    model: torch.nn.Module,
    builder: PromptBuilder,
    demos: Sequence[Example],
    test: Sequence[Example],
    cfg: FewShotConfig | None = None,
    *,
    seed: int = 0,
    affine_set: Sequence[Example] = (),
    prompts: Sequence[Prompt] | None = None,
) -> DemoEval:
    """Score `test` after `demos` (see the module doc); `affine_set`: the affine fit examples;
    `prompts`: the test prompts when the caller has built them already (one per example)."""
    cfg = cfg or FewShotConfig()
    task = builder.task
    test = list(test)
    if not test:
        raise LmforgeError(f"task {task.name}: no test examples to score")
    gold = [ex.label for ex in test]
    if prompts is None:
        prompts = builder.build_many(demos, test)
    elif len(prompts) != len(test):
        raise LmforgeError(f"{len(prompts)} prompts for {len(test)} test examples")
    mean_len = sum(len(p.ids) for p in prompts) / len(prompts)
    k = len(demos)
    if cfg.scoring == "generate":
        answers = generate_answers(
            model, builder.tokenizer, prompts, task, max_new_tokens=cfg.max_new_tokens,
            extract=cfg.answer_regex or None,
        )  # fmt: skip
        preds = [a.label for a in answers]
        return DemoEval(
            k, seed, list(demos), test, preds, classification_metrics(gold, preds, task.labels),
            answers=answers, prompt_tokens=mean_len,
        )  # fmt: skip
    scores = _score(model, builder, prompts, cfg, "test example", k, seed)
    preds = scores.predictions()
    out = DemoEval(
        k, seed, list(demos), test, list(preds), classification_metrics(gold, preds, task.labels),
        scores=scores, prompt_tokens=mean_len,
    )  # fmt: skip
    if cfg.calibrate:
        cf = builder.content_free(demos, cfg.content_free)
        cf_scores = _score(model, builder, cf, cfg, "content-free input", k, seed)
        cal = ContextualCalibration.from_content_free(cf_scores.probs)
        out.p_cf = cal.p_cf
        out.calibrated = _calibrated(cal.apply(scores.probs), gold, task)
    if affine_set:
        fit_prompts = builder.build_many(demos, affine_set)
        fit = _score(model, builder, fit_prompts, cfg, "affine fit example", k, seed)
        y = torch.tensor([task.labels.index(ex.label) for ex in affine_set])
        aff = AffineCalibration.fit(fit.probs, y)
        out.affine = _calibrated(aff.apply(scores.probs), gold, task)
    return out


def _calibrated(probs: torch.Tensor, gold: list[str], task: ClassificationTask) -> Calibrated:
    preds = [task.labels[j] for j in probs.argmax(dim=-1).tolist()]
    return Calibrated(probs, preds, classification_metrics(gold, preds, task.labels))


def draw_demos(
    task: ClassificationTask, k: int, seed: int, cfg: FewShotConfig
) -> tuple[list[Example], list[Example]]:
    """(demos, affine fit set) of draw `seed`: the fit set first, the demos from the rest."""
    fit_idx: list[int] = []
    if cfg.affine:
        fit_idx = sample_indices(task, cfg.affine, seed=seed + AFFINE_SEED_OFFSET)
    seq = cfg.label_order()
    if seq is not None:
        skip = set(fit_idx)
        rest = [ex for i, ex in enumerate(task.train) if i not in skip]
        demos = demos_for_labels(dataclasses.replace(task, train=rest), seq, seed=seed)
    else:
        idx = sample_indices(
            task, k, seed=seed, balanced=cfg.selection == "balanced", exclude=fit_idx
        )
        demos = order_demos([task.train[i] for i in idx], cfg.order, seed=seed)
    return demos, [task.train[i] for i in fit_idx]


def check_plan(task: ClassificationTask, cfg: FewShotConfig) -> None:
    """Refuse, before any model is loaded, draws the train set cannot give."""
    for k in cfg.k:
        for seed in range(cfg.first_seed, cfg.first_seed + min(cfg.seeds, 1)):
            draw_demos(task, k, seed, cfg)


@dataclass
class FewShotResult:
    """Every (k, seed) evaluation of one task and format, and their summary."""

    task: str
    format: str
    labels: list[str]
    config: FewShotConfig
    evals: list[DemoEval] = field(default_factory=list)

    def variants(self) -> list[str]:
        """Which predictions exist: "uncalibrated", and "calibrated" / "affine" if asked."""
        out = ["uncalibrated"]
        if any(e.calibrated is not None for e in self.evals):
            out.append("calibrated")
        if any(e.affine is not None for e in self.evals):
            out.append("affine")
        return out

    @staticmethod
    def metrics_of(e: DemoEval, variant: str) -> ClassificationMetrics:
        if variant == "calibrated":
            return e.calibrated.metrics
        if variant == "affine":
            return e.affine.metrics
        return e.metrics

    def summary(self) -> list[dict[str, Any]]:
        """One row per k: accuracy and macro-F1 spread across seeds, per variant."""
        rows = []
        for k in dict.fromkeys(e.k for e in self.evals):
            group = [e for e in self.evals if e.k == k]
            row: dict[str, Any] = {
                "k": k,
                "seeds": len(group),
                "prompt_tokens": sum(e.prompt_tokens for e in group) / len(group),
            }
            for v in self.variants():
                ms = [self.metrics_of(e, v) for e in group]
                share: dict[str, float] = {}
                for m in ms:
                    for label, x in m.predicted_share().items():
                        share[label] = share.get(label, 0.0) + x / len(ms)
                row[v] = {
                    "accuracy": spread([m.accuracy for m in ms]),
                    "macro_f1": spread([m.macro_f1 for m in ms]),
                    "predicted_share": share,
                }
            rows.append(row)
        return rows

    def to_markdown(self) -> str:
        """The table `lmforge fewshot` prints: accuracy mean ± std [min, max], macro-F1."""
        variants = self.variants()
        head = ["k", "seeds"]
        for v in variants:
            tag = "" if v == "uncalibrated" else f" ({v})"
            head += [f"accuracy{tag}", f"min–max{tag}", f"macro-F1{tag}"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.summary():
            cells = [str(row["k"]), str(row["seeds"])]
            for v in variants:
                a, f = row[v]["accuracy"], row[v]["macro_f1"]
                cells += [
                    f"{100 * a['mean']:.1f} ± {100 * a['std']:.1f}",
                    f"{100 * a['min']:.1f}–{100 * a['max']:.1f}",
                    f"{100 * f['mean']:.1f}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def run_fewshot(
    model: torch.nn.Module,
    builder: PromptBuilder,
    cfg: FewShotConfig | None = None,
    *,
    test: Sequence[Example] | None = None,
    show_progress: bool = True,
) -> FewShotResult:
    """Every k of ``cfg.k`` and every seed: draw, evaluate, collect (see the module doc)."""
    cfg = cfg or FewShotConfig()
    task = builder.task
    check_plan(task, cfg)
    if cfg.scoring == "labels":
        builder.label_ids()  # a label word that tokenizes to nothing fails before any forward
    examples = list(test) if test is not None else take_test(task, cfg.limit)
    result = FewShotResult(task.name, task.format.name, list(task.labels), cfg)
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    # Zero-shot prompts do not depend on the seed (unless an affine fit set is drawn).
    plan = [(k, s) for k in cfg.k for s in (seeds if k or cfg.affine else seeds[:1])]
    bar = (
        progress(total=len(plan), desc=f"fewshot {task.name}", unit="draw")
        if show_progress
        else None
    )
    for k, seed in plan:
        demos, fit = draw_demos(task, k, seed, cfg)
        result.evals.append(
            evaluate_demos(model, builder, demos, examples, cfg, seed=seed, affine_set=fit)
        )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return result
