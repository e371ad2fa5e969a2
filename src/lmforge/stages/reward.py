"""`lmforge reward train`: a reward model — a decoder plus a reward head — trained on pairs.

The second stage of the LLaMA-2 recipe. The parent run (`--from`: an SFT or
pretrain run) gives the decoder; `models.heads.WithScalarHead` adds one linear
layer reading the final hidden state at the last token of prompt + answer
(the answer's ``<|end|>``) — or, with ``--head likelihood``, a learned scale on the
answer's mean log-probability under the decoder's own language model (SimPO's
reward, no reference) — and `train.reward.RewardObjective` trains the
margin ranking loss, with the optional reward-centering penalty (``--center``)
and language-model regulariser (``--lm-coef``).
The run folder is a run like any other: `load_run` gives the head model back,
`lmforge reward score` and `lmforge eval reward` read it, `lmforge rs` and PPO
use it as their reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..common import ConfigError
from ..config import field_
from ..train.loop import TrainResult
from .pairwise import PairsPrepared, Stage, run_pairwise_stage
from .pairwise_config import PairwiseConfig

STAGE = "reward"


@dataclass
class RewardConfig(PairwiseConfig):
    """`lmforge reward train --from RUN --data PAIRS --out RM`."""

    center: float = field_(
        0.0, help="reward-centering penalty c·(r_chosen + r_rejected)² (0: off; 0.01 is common)",
        min=0.0,
    )  # fmt: skip
    head: str = field_(
        "scalar", help="scalar: a linear head on the last token's hidden state; likelihood: "
        "beta times the answer's mean log-probability under the trunk's own language model "
        "(SimPO's reward; starts where the SFT model's likelihood ranks pairs)",
        choices=("scalar", "likelihood"),
    )  # fmt: skip
    beta: float = field_(
        2.0, help="--head likelihood: the starting scale of the mean log-probability (a learned "
        "weight; SimPO's beta)", min=0.0,
    )  # fmt: skip
    lm_coef: float = field_(
        0.0, help="weight of the chosen answers' language-model loss, kept beside the ranking "
        "loss so the trunk keeps what the SFT model knew (GRM; 0: off)",
        min=0.0,
    )  # fmt: skip


def _build(prep: PairsPrepared, ctx: Any, start: Any):
    from ..models.heads import HeadModel
    from ..train.reward import RewardObjective
    from .base import build_stage_model

    cfg = prep.cfg
    for name, used in (("lm_coef", cfg.lm_coef), ("head", cfg.head == "likelihood")):
        if used and prep.arch == "bert":  # both read the trunk's own language model
            raise ConfigError(name, "needs a decoder (--from a GPT, LLaMA or RNN run), not bert")
    if cfg.head == "likelihood" and cfg.lm_coef:
        raise ConfigError(
            "lm_coef", "a likelihood head's score already is the answers' log-probability; "
            "use --lm-coef with --head scalar",
        )  # fmt: skip
    base, _ = build_stage_model(prep.arch, prep.mcfg, cfg.seed, prep.parent_sd, lora=cfg.lora)
    # The head is new (and trainable, with --lora too); `scale` matters to a likelihood head.
    model = HeadModel(base, cfg.head, scale=cfg.beta)
    n_params = sum(w.numel() for w in {id(w): w for w in model.parameters()}.values())
    return model, n_params, RewardObjective(center=cfg.center, lm_coef=cfg.lm_coef), {}


REWARD_STAGE = Stage(name=STAGE, head=True, build=_build)


def reward_train(cfg: RewardConfig, *, resume: bool = False) -> TrainResult:
    """Train a reward model as `cfg` says (continuing RUN/latest with `resume`)."""
    return run_pairwise_stage(cfg, resume, REWARD_STAGE)
