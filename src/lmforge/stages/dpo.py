"""`lmforge dpo`: direct preference optimisation of a policy against its frozen start.

The parent run (`--from`, normally an SFT run) is both the policy's start and
the reference π_ref. `train.dpo.DPOObjective` trains the DPO loss (or IPO,
``--loss-type ipo``; conservative label smoothing with ``--label-smoothing``).
The reference log-probabilities of every pair (train and validation) are by
default computed once before the first step and kept in the run folder
(``reference_logps.safetensors``): every later step then runs one model, not
two, and ``--resume`` needs neither the parent nor a second model in memory.
``--reference model`` keeps a frozen copy and runs it on every batch instead
(what TRL does without ``precompute_ref_log_probs``); its resume reopens the
parent run recorded in the trainer state and checks its weights' digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common import LmforgeError, move_to
from ..config import field_
from ..runs.layout import REFERENCE_LOGPS_FILE as REFERENCE_FILE
from ..train.loop import TrainResult
from .pairwise import PairsPrepared, Stage, pair_batches, run_pairwise_stage
from .pairwise_config import PairwiseConfig

STAGE = "dpo"


@dataclass
class DPOConfig(PairwiseConfig):
    """`lmforge dpo --from SFT_RUN --data PAIRS --out RUN`."""

    beta: float = field_(0.1, help="β: how far the policy may move from the reference", min=1e-6)
    loss_type: str = field_("sigmoid", help="sigmoid (DPO) or ipo", choices=("sigmoid", "ipo"))
    label_smoothing: float = field_(
        0.0, help="conservative DPO: the share of pairs assumed mislabelled", min=0.0, max=0.49
    )
    reference: str = field_(
        "precompute",
        help="precompute: the reference's log-probs once, before training, kept in the run "
        "folder; model: a frozen copy run on every batch",
        choices=("precompute", "model"),
    )


def reference_model(start: Any) -> torch.nn.Module:
    """The frozen reference: the parent run's model (reopened and checked on resume)."""
    from ..runs import load_run

    if start.parent is not None:
        ref = start.parent.model
    else:
        info = start.parent_info or {}
        where = info.get("run")
        if not where or not Path(where).exists():
            raise LmforgeError(
                f"the reference run {where!r} recorded in the trainer state is gone; "
                "--reference model resumes from it (precompute keeps what it needs in the run)"
            )
        parent = load_run(where, step=info.get("step"))
        digest = parent.checkpoint.state.get("files", {}).get("model.safetensors", {})
        if info.get("weights_sha256") and digest.get("sha256") != info["weights_sha256"]:
            raise LmforgeError(
                f"{where}: its weights changed since this DPO run started; the reference must "
                "stay the same (start a new run, or use --reference precompute)"
            )
        ref = parent.model
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


@torch.no_grad()
def reference_table(
    ref: torch.nn.Module, pairs: list[Any], prep: PairsPrepared, device
) -> torch.Tensor:
    """(N, 2) the reference's summed answer log-probs (chosen, rejected) of every pair."""
    from ..train.logprobs import answer_logps

    table = torch.zeros(len(pairs), 2, dtype=torch.float32)
    if not pairs:
        return table
    src = pair_batches(prep, pairs, shuffle=False)
    ref = ref.to(device)
    for batch in src.eval_batches():
        logps = answer_logps(ref, move_to(batch, device)).float().cpu()  # (2B,)
        table[batch["index"]] = torch.stack(logps.chunk(2), dim=1)  # (B, 2)
    return table


def _tables(prep: PairsPrepared, ctx: Any, start: Any) -> dict[str, torch.Tensor]:
    """The train/val reference tables: computed on a fresh start, read back on resume."""
    from safetensors.torch import load_file, save_file

    path = Path(prep.cfg.out) / REFERENCE_FILE
    want = {"train": len(prep.train), "val": len(prep.val)}
    if start.resume is not None:
        if not path.is_file():
            raise LmforgeError(f"{path}: missing; the run cannot resume without its reference")
        tables = load_file(str(path))
        got = {k: int(v.shape[0]) for k, v in tables.items()}
        if got != want:
            raise LmforgeError(
                f"{path}: holds reference log-probs for {got} pairs but the data now gives "
                f"{want}; resume with the data the run started with"
            )
        return tables
    ref = reference_model(start)
    tables = {k: reference_table(ref, getattr(prep, k), prep, ctx.device) for k in want}
    if ctx.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tables.items()}, str(path))
    ref.to("cpu")
    return tables


def _objective(prep: PairsPrepared, ref: Any, table: torch.Tensor | None):
    from ..train.dpo import DPOObjective

    cfg = prep.cfg
    return DPOObjective(
        beta=cfg.beta, loss_type=cfg.loss_type, label_smoothing=cfg.label_smoothing,
        reference=ref, ref_logps=table,
    )  # fmt: skip


def _build(prep: PairsPrepared, ctx: Any, start: Any):
    from .base import build_stage_model

    cfg = prep.cfg
    model, n_params = build_stage_model(
        prep.arch, prep.mcfg, cfg.seed, prep.parent_sd, lora=cfg.lora
    )
    if cfg.reference == "precompute":
        tables = _tables(prep, ctx, start)
        prep.extras["ref_tables"] = tables  # the validation objective reads its own table
        return model, n_params, _objective(prep, None, tables["train"]), {}
    ref = reference_model(start).to(ctx.device)
    prep.extras["ref_model"] = ref
    return model, n_params, _objective(prep, ref, None), {}


def _val_objective(prep: PairsPrepared, ctx: Any, model: Any):
    if prep.cfg.reference == "precompute":
        return _objective(prep, None, prep.extras["ref_tables"]["val"])
    return _objective(prep, prep.extras["ref_model"], None)


def _rows(prep: PairsPrepared) -> list[tuple[str, Any]]:
    cfg = prep.cfg
    return [("β", cfg.beta), ("loss", cfg.loss_type), ("label smoothing", cfg.label_smoothing),
            ("reference", cfg.reference)]  # fmt: skip


DPO_STAGE = Stage(
    name=STAGE, head=False, build=_build, val_objective=_val_objective, report_rows=_rows
)


def dpo(cfg: DPOConfig, *, resume: bool = False) -> TrainResult:
    """Train a policy with DPO as `cfg` says (continuing RUN/latest with `resume`)."""
    return run_pairwise_stage(cfg, resume, DPO_STAGE)
