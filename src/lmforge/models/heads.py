"""Scalar (reward) and value heads on top of a base model, by composition.

``HeadModel(base, kind)`` keeps the base model whole (``model.base``, its own
``forward`` and ``lm_head`` untouched) and adds one linear layer ``model.head``
(d_model -> 1) reading the base's final hidden states (``base.features``: GPT,
LLaMA and RNN models; BERT's ``encode``):

* ``kind="scalar"`` (reward model): one score per sequence, read at the last
  real token of each row (``lengths`` or ``attn_mask`` say where rows end; right
  padding, and for decoders left padding too). ``forward(ids, ...) -> (B,)``.
* ``kind="value"`` (PPO critic): one value per position. ``forward(ids, ...) ->
  (B, T)``.
* ``kind="likelihood"`` (a reward model whose feature is the base's own language
  model): the answer's mean per-token log-probability under the base's
  ``lm_head``, through a linear head of width 1, ``w · (1/|y|) Σ_t log p(y_t | x,
  y_<t) + b`` (w starts at ``scale``, SimPO's β; b at 0). It needs to know
  which tokens are the answer: ``forward(ids, response_mask=...) -> (B,)``. A
  reward model that starts where the SFT model's likelihood already ranks pairs
  (docs/preferences.md) and that the ranking loss trains as SimPO trains a policy
  (Meng et al. 2024), with no reference model.

``WithScalarHead(base)`` and ``WithValueHead(base)`` are the two kinds by name.

Head init: a scalar head's weight ~ N(0, 1/sqrt(d_model + 1)), bias 0, the reward
head init of OpenAI's lm-human-preferences (Ziegler et al. 2019), which TRL
follows (scores start at the scale of one unit-variance feature); a value head
starts at zero (lm-human-preferences' value head), so PPO's first advantages are
the rewards themselves, not the noise of a random critic.

Checkpoints: ``save_model`` writes the head kind in the safetensors metadata
(``lmforge_head=scalar``), next to the base's arch and config, so
``load_model(path)`` rebuilds base + head. ``load_model(path, head=False)`` loads
only the base from a head checkpoint (initialise a PPO policy from a reward
model); ``load_model(plain_path, head="value")`` wraps a plain base checkpoint
in a freshly initialised head. Parameter names are ``base.<base name>`` and
``head.weight`` / ``head.bias``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import (
    IGNORE,
    last_token_index,
    n_sides,
    shifted_targets,
    side_ends,
    side_sums,
    target_sides,
)

HEAD_KINDS = ("scalar", "value", "likelihood")
REWARD_KINDS = ("scalar", "likelihood")  # the kinds that score whole (prompt, answer) rows


def feature_size(base: nn.Module) -> int:
    """The width of `base`'s final hidden states (d_model for every lmforge arch)."""
    return int(base.config.d_model)


def base_features(base: nn.Module, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    """(B, T, C) final hidden states of any lmforge model; None-valued kwargs are dropped."""
    kw = {k: v for k, v in kwargs.items() if v is not None}
    return base.features(ids, **kw)


class HeadModel(nn.Module):
    """A base model plus a scalar (per-sequence), value (per-position) or likelihood
    (per-sequence, from the base's own log-probabilities) linear head."""

    def __init__(self, base: nn.Module, kind: str = "scalar", *, scale: float = 1.0):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"head kind must be one of {', '.join(HEAD_KINDS)}, got {kind!r}")
        base = getattr(base, "_orig_mod", base)
        self.kind = kind
        self.base = base
        if kind == "likelihood" and arch_is_bert(base):
            raise ValueError("a likelihood head needs a decoder base (its lm_head scores)")
        d = 1 if kind == "likelihood" else feature_size(base)
        ref = next(base.parameters())
        self.scale = float(scale)
        self.head = nn.Linear(d, 1, device=ref.device, dtype=ref.dtype)
        self.reset_head()

    @torch.no_grad()
    def reset_head(self) -> None:
        """Scalar: weight ~ N(0, 1/sqrt(d_model + 1)), bias 0 (lm-human-preferences' reward
        head). Value: all zeros (lm-human-preferences' value head), so the critic starts
        predicting 0 — at the scale of a reward — rather than unit-scale noise, which
        would dominate the first iterations' advantages. Likelihood: weight `scale`,
        so the first scores are β times the answers' mean log-probability."""
        d = self.head.in_features
        if self.kind == "likelihood":
            nn.init.constant_(self.head.weight, self.scale)
        elif self.kind == "value":
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.normal_(self.head.weight, 0.0, 1.0 / math.sqrt(d + 1))
        nn.init.zeros_(self.head.bias)

    @property
    def causal(self) -> bool:
        """Whether the base attends only backwards (every decoder; not BERT)."""
        return not arch_is_bert(self.base)

    # The base's config is the model's config: arch_of / config_to_dict / info see the base.
    @property
    def config(self):
        return self.base.config

    @property
    def max_seq_len(self):
        return getattr(self.base, "max_seq_len", None)

    def num_params(self, non_embedding: bool = False) -> int:
        return self.base.num_params(non_embedding) + sum(p.numel() for p in self.head.parameters())

    def features(self, ids: torch.Tensor, **kwargs) -> torch.Tensor:
        """The base's final hidden states (B, T, C)."""
        return base_features(self.base, ids, **kwargs)

    def forward(
        self,
        ids: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        branch_ids: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        response_mask: torch.Tensor | None = None,
        sides: torch.Tensor | None = None,
    ):
        """Scores (B,) for ``kind="scalar"`` and ``"likelihood"``, values (B, T) for
        ``kind="value"``.

        ``response_mask`` (B, T) marks the answer's tokens: what a likelihood head
        scores (required there, or ``sides``; the other kinds ignore it).

        ``sides`` (B, T) int: several answers per row (a preference batch, either layout
        of `data.preference_batches`): each answer token holds its answer's number
        0..K-1, every other token -1; a scalar or likelihood head then gives K scores,
        one per answer (a scalar head reads each answer's last token).

        ``targets`` (B, T): one trunk pass gives the head's output and the language
        model's logits too, ``(values (B, T) or scores (B,), logits (N, V))``, the logits
        of the base's ``lm_head`` at the N positions whose target is not -100: PPO's
        actor and critic on a shared trunk, or a reward model regularised by the
        language-model loss on its chosen answers (``RewardObjective(lm_coef=...)``).

        ``attn_mask`` (B, T) marks real tokens (the base never attends to padding);
        ``lengths`` (B,) counts real tokens of right-padded rows (a scalar head reads
        position ``lengths - 1``; without either it reads the last column).
        ``position_ids`` / ``doc_ids`` / ``branch_ids`` go to the base as in ``GPT.forward``.
        """
        B, T = ids.shape
        layout = dict(
            attn_mask=attn_mask, position_ids=position_ids, doc_ids=doc_ids, branch_ids=branch_ids
        )
        if self.kind == "likelihood":
            if targets is not None:
                raise ValueError("a likelihood head gives no separate language-model logits")
            if sides is None:
                if response_mask is None:
                    raise ValueError("a likelihood head scores the answer: pass response_mask")
                sides = row_sides(response_mask)
            return self._likelihood_scores(ids, sides, layout)
        if lengths is not None and attn_mask is None and self.kind == "scalar" and not self.causal:
            # Right padding from lengths: an encoder needs the mask to hide the padding
            # keys; a causal base never attends forward, so real positions cannot see
            # right padding and it keeps the fast unmasked path.
            cols = torch.arange(T, device=ids.device)
            attn_mask = cols[None, :] < torch.as_tensor(lengths, device=ids.device)[:, None]
            layout["attn_mask"] = attn_mask
        h = self.features(ids, **layout)
        if self.kind == "value":
            values = self.head(h).squeeze(-1)  # (B, T)
            if targets is None:
                return values
            return values, self._target_logits(h, targets)
        last = last_token_index(T, lengths=lengths, attn_mask=attn_mask, device=ids.device)
        if sides is not None:
            h_last = h.reshape(B * T, -1)[side_ends(sides, n_sides(sides))]  # (K, C)
        elif last is None:
            h_last = h[:, -1]  # (B, C)
        else:
            h_last = h[torch.arange(B, device=ids.device), last]  # (B, C)
        scores = self.head(h_last).squeeze(-1)  # (B,)
        if targets is None:
            return scores
        return scores, self._target_logits(h, targets)

    def _likelihood_scores(self, ids, sides, layout):
        """(K,) the head applied to each answer's mean log-probability (answers by `sides`)."""
        targets = shifted_targets(ids, sides >= 0)  # (B, T); token 0 never counts
        h = self.features(ids, **layout)
        keep = targets != IGNORE  # (B, T)
        logits = self._target_logits(h, targets)  # (N, V)
        logp = torch.zeros(keep.shape, dtype=torch.float32, device=ids.device)  # (B, T)
        logp[keep] = -F.cross_entropy(logits.float(), targets[keep], reduction="none")
        owner, K = target_sides(sides, targets), n_sides(sides)  # (B, T): each target's answer
        total, count = side_sums(logp, owner, K), side_sums(keep.float(), owner, K)  # (K,) each
        mean = total / count.clamp(min=1)  # (K,) mean log p of each answer's tokens
        return self.head(mean.to(self.head.weight.dtype)[:, None]).squeeze(-1)  # (K,)

    def _target_logits(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, V) logits of the base's ``lm_head`` at the N positions of `targets` (B, T)
        that are not -100, from the features `h` (B, T, C) the head also read."""
        lm_head = getattr(self.base, "lm_head", None)
        if lm_head is None or not self.causal:
            raise ValueError("language-model logits need a decoder base with an lm_head")
        B, T, C = h.shape
        keep = (targets != -100).reshape(-1)  # (B*T,)
        return lm_head(h.reshape(B * T, C)[keep])  # (N, V)

    def score_features(self, h: torch.Tensor) -> torch.Tensor:
        """The head applied to features (..., C) -> (...)."""
        return self.head(h).squeeze(-1)


def row_sides(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) `sides` for one answer per row: row r's masked tokens are answer r."""
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand(mask.shape)
    return torch.where(mask.bool(), rows, -1)


def WithScalarHead(base: nn.Module) -> HeadModel:  # noqa: N802 (a constructor by name)
    """A reward model: `base` + a scalar head (one score per sequence)."""
    return HeadModel(base, "scalar")


def WithValueHead(base: nn.Module) -> HeadModel:  # noqa: N802
    """A PPO value model: `base` + a value head (one value per position)."""
    return HeadModel(base, "value")


def arch_is_bert(base: nn.Module) -> bool:
    from .registry import arch_of

    return arch_of(base) == "bert"


def is_reward_model(model: nn.Module) -> bool:
    """Whether `model` scores (prompt, answer) rows: a scalar or likelihood head."""
    return head_kind(model) in REWARD_KINDS


def head_kind(model: nn.Module) -> str | None:
    """The head kind of a model (one of HEAD_KINDS), or None for a plain base model."""
    model = getattr(model, "_orig_mod", model)
    return model.kind if isinstance(model, HeadModel) else None
