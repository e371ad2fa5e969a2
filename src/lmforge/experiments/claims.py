"""The textbook's claims as experiments (`lmforge experiments`): the types and the registry.

A claim is one sentence of the chapter ("longer n-gram contexts give sparser counts and
gains that saturate", "best-of-N raises the max reward, not the median"). Its experiment
measures it on data this machine can afford and returns a `ClaimResult`: a table, plots
in the claim's folder, the numbers, and a `Verdict` computed from those numbers by the
module's own pure `verdict(...)` function (so a test can feed it numbers that must fail).

Experiments that need a trained model share one base (`claims_base`): the CPU demo's
world, tokenizer, shards, pretrained model and SFT model, built once under OUT/base by
`lmforge recipe` (or an existing recipe folder given with `--base`). Each experiment module
defines `run(ctx: ClaimContext) -> ClaimResult`; the registry names modules, so `lmforge
experiments list` imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced at this scale"
STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED)

# What an experiment needs from the shared base, in build order.
NEEDS_NOTHING, NEEDS_PRETRAIN, NEEDS_SFT = "", "pretrain", "sft"
BASE_MINUTES = 11.0  # building the shared base once (bases/full.yaml) on 2 CPU cores
BASE_ORDER = (NEEDS_NOTHING, NEEDS_PRETRAIN, NEEDS_SFT)


@dataclass(frozen=True)
class Verdict:
    status: str  # one of STATUSES
    reason: str  # one sentence with the numbers that decided it

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status {self.status!r} is not one of {STATUSES}")

    def line(self) -> str:
        return f"{self.status}: {self.reason}"


@dataclass
class ClaimResult:
    verdict: Verdict
    columns: list[str]  # the table's header
    rows: list[list[Any]]  # the table (cells are rendered with str())
    plots: list[str] = field(default_factory=list)  # PNG file names in the claim's folder
    numbers: dict[str, Any] = field(default_factory=dict)  # what the verdict was computed from
    notes: list[str] = field(default_factory=list)  # setup and caveats, one sentence each


@dataclass(frozen=True)
class BaseRuns:
    """The shared base's run folders (any may be None when the base was built only partly)."""

    root: Path
    world: Path
    tokenizer: Path
    shards: Path
    pretrain: Path
    sft: Path | None


@dataclass(frozen=True)
class ClaimContext:
    out: Path  # the experiment's own folder (exists, empty at the start)
    quick: bool  # tiny settings: checks the experiment runs, says nothing about the claim
    seed: int
    base: BaseRuns | None  # None for experiments that need nothing
    threads: int | None = None  # torch threads for in-process work and the verbs it runs

    def verb(self, argv: list[str], name: str) -> None:
        """Run `python -m lmforge ARGV` (the user's own command) logged to out/logs/NAME.log."""
        from .recipe import command_line, run_verb

        log = self.out / "logs" / f"{name}.log"
        rc = run_verb(argv, log)
        if rc != 0:
            raise LmforgeError(f"`{command_line(argv)}` failed (exit {rc}); see {log}")

    def thread_flags(self) -> list[str]:
        return ["--threads", str(self.threads)] if self.threads else []


@dataclass(frozen=True)
class ClaimSpec:
    id: str  # "C1"
    slug: str  # the folder name after the id: C1-ngram-context
    title: str
    claim: str  # the textbook's sentence
    needs: str  # NEEDS_NOTHING, NEEDS_PRETRAIN or NEEDS_SFT
    module: str  # lmforge.experiments.<module> defines run(ctx)
    minutes: float  # measured wall time of the full experiment on 2 CPU cores (rounded up)

    @property
    def folder(self) -> str:
        return f"{self.id}-{self.slug}"

    def runner(self) -> Callable[[ClaimContext], ClaimResult]:
        mod = importlib.import_module(f"{__package__}.{self.module}")
        return mod.run


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "C1", "ngram-context", "n-gram context length",
        "Longer n-gram contexts make counts sparser and perplexity gains saturate; products "
        "of many probabilities underflow while sums of logs do not.",
        NEEDS_NOTHING, "claims_ngram", 0.5,
    ),
    ClaimSpec(
        "C2", "tokenizers", "BPE, digits and unspaced text",
        "BPE splits numbers arbitrarily and splitting digits fixes arithmetic; Unigram "
        "segments unspaced text.",
        NEEDS_NOTHING, "claims_tokenizers", 6.0,
    ),
    ClaimSpec(
        "C3", "long-context", "RNNs forget, transformers do not",
        "RNNs forget distant context while transformers use it (loss by position).",
        NEEDS_NOTHING, "claims_memory", 6.0,
    ),
    ClaimSpec(
        "C4", "few-shot", "few-shot prompting and example order",
        "Few-shot prompts beat zero-shot ones, and the order of the examples biases the answer.",
        NEEDS_PRETRAIN, "claims_prompting", 2.5,
    ),
    ClaimSpec(
        "C5", "calibration", "contextual calibration",
        "Contextual calibration raises few-shot accuracy and lowers its spread across prompts.",
        NEEDS_PRETRAIN, "claims_calibration", 2.0,
    ),
    ClaimSpec(
        "C6", "prompt-tuning", "prompt tuning vs fine-tuning",
        "Prompt tuning with 20 soft tokens approaches full fine-tuning at a fraction of the "
        "trained parameters, and the gap shrinks with model size.",
        NEEDS_PRETRAIN, "claims_prompt_tuning", 4.0,
    ),
    ClaimSpec(
        "C7", "instruction-mixtures", "multi-template instruction mixtures",
        "Instruction tuning on many templates generalises to held-out templates and held-out "
        "tasks better than tuning on a single template.",
        NEEDS_PRETRAIN, "claims_mixtures", 6.0,
    ),
    ClaimSpec(
        "C8", "chain-of-thought", "chain-of-thought vs direct answers",
        "Chain-of-thought answers beat direct answers on multi-step problems (and may need a "
        "minimum model size).",
        NEEDS_PRETRAIN, "claims_cot", 6.5,
    ),
    ClaimSpec(
        "C9", "best-of-n", "best-of-N sampling",
        "With N samples per prompt the max reward rises with N while the median stays flat.",
        NEEDS_SFT, "claims_best_of_n", 0.5,
    ),
    ClaimSpec(
        "C10", "ppo-kl", "PPO reward and KL",
        "PPO raises the reward while the KL divergence to the reference model stays bounded.",
        NEEDS_SFT, "claims_ppo", 7.5,
    ),
)  # fmt: skip


def find_claim(name: str) -> ClaimSpec:
    """A claim by id (`C3`, `c3`), slug (`long-context`) or folder name (`C3-long-context`)."""
    key = name.strip().lower()
    for spec in CLAIMS:
        if key in (spec.id.lower(), spec.slug, spec.folder.lower()):
            return spec
    ids = ", ".join(s.id for s in CLAIMS)
    raise LmforgeError(
        f"no experiment {name!r}; experiments: {ids} or all (`lmforge experiments list`)"
    )


def select_claims(names: list[str]) -> list[ClaimSpec]:
    """The claims named, in registry order; `all` is every one."""
    if any(n.strip().lower() == "all" for n in names):
        return list(CLAIMS)
    chosen = {find_claim(n).id for n in names}
    return [s for s in CLAIMS if s.id in chosen]
