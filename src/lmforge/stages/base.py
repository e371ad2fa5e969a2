"""The stage contract, shared by every training stage (pretrain, SFT, reward, RS, DPO, PPO).

A stage either starts from a parent run (`--from RUN`: the parent's weights and
tokenizer through `load_run`, a new optimizer, step 0, the parent recorded in
every checkpoint's trainer state) or continues itself (`--resume`: the run's own
latest checkpoint, bitwise). It writes one run folder (`lmforge.runs.layout`).
`StageConfig` holds the fields every stage has; `start_stage` does the checks
that come before anything is built. `--resume` of a run whose budget
(`--max-steps`, `--max-tokens`, `--max-time`) is already spent is complete: the
stage says so and returns without writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError
from ..config import field_
from ..runs import Run, RunLayout, load_run, parent_record
from ..runs.checkpoint import Checkpoint, find_resume_checkpoint, list_checkpoints
from ..train.config import TrainConfig
from ..train.loop import TrainResult, budget_spent, state_counters


@dataclass
class StageConfig(TrainConfig):
    """The loop's settings plus the run folder and the parent run of a stage."""

    out: str = field_("", help="run folder to create (or resume)")
    init_from: str = field_(
        "",
        help="start from this run's weights and tokenizer (new optimizer, step 0, the parent "
        "recorded); `--from RUN`",
        aliases=("--from",),
    )

    def validate(self) -> None:
        super().validate()
        if not self.out:
            raise ConfigError("out", "required: the run folder to write")
        if self.init_from and Path(self.init_from).resolve() == Path(self.out).resolve():
            raise ConfigError(
                "init_from", "is the output run itself; use --resume to continue a run"
            )


@dataclass
class StageStart:
    """What a stage starts from: its own checkpoint (resume), a parent run, or nothing."""

    resume: Checkpoint | None
    parent: Run | None
    parent_info: dict[str, Any] | None  # recorded in trainer state (kept across resumes)
    complete: str | None = None  # `--resume` of a run whose budget is already spent: which

    def completed_result(self) -> TrainResult:
        """What the finished run reached, from its checkpoint (nothing is trained or written)."""
        st = state_counters(self.resume.state)
        return TrainResult(
            step=st.step,
            tokens_seen=st.tokens_seen,
            elapsed_s=st.elapsed_s,
            train_loss=None,
            best_val_loss=st.best_val_loss,
            stop_reason=self.complete or "complete",
            checkpoint=self.resume.path,
            nan_skipped=st.nan_skipped,
        )


def start_stage(cfg: StageConfig, *, resume: bool, need: str | None = None) -> StageStart:
    """Check the output folder and open the parent run, before anything heavy is built.

    `need` is the kind of model the stage trains ("decoder", "transformer-decoder", ...);
    a parent of another kind is refused. On `--resume` the parent is not reopened: the
    run's own checkpoint holds the weights, and its trainer state the parent's record.
    """
    out = Path(cfg.out)
    ckpt = find_resume_checkpoint(out) if resume else None
    if not resume and list_checkpoints(out):
        raise LmforgeError(
            f"{out}: already holds checkpoints; pass --resume to continue it or choose another --out"
        )
    if ckpt is not None:
        if ckpt.state.get("stage") == "import":
            raise import_not_resumable(out)
        done = budget_spent(state_counters(ckpt.state), cfg)
        return StageStart(ckpt, None, ckpt.state.get("parent"), complete=done)
    if not cfg.init_from:
        return StageStart(None, None, None)
    parent = load_run(cfg.init_from, need=need)
    if RunLayout(out).root.resolve() in Path(cfg.init_from).resolve().parents:
        raise ConfigError("out", f"{out} contains the parent run {cfg.init_from}; choose another")
    return StageStart(None, parent, parent_record(parent))


def import_not_resumable(run: str | Path) -> LmforgeError:
    """The error for `--resume` of a run made by `lmforge import hf` (it has no training)."""
    return LmforgeError(
        f"{run}: was made by `lmforge import hf` and has no training to resume; start a new "
        f"run from it with --from {run}"
    )


def check_parent_tokenizer(parent: Run, tok_hash: str, data: str) -> None:
    """The stage's data must be tokenized with the parent's tokenizer."""
    if parent.tokenizer.hash != tok_hash:
        raise LmforgeError(
            f"{data}: was prepared with tokenizer {tok_hash}, but the parent run "
            f"{parent.path} uses {parent.tokenizer.hash}; prepare the data with "
            f"--tokenizer {parent.layout.tokenizer}"
        )
