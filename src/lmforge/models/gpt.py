"""Decoder-only transformers: GPT-1, GPT-2/3 and LLaMA in one readable file.

One ``GPT`` module covers the whole family; ``GPTConfig`` switches pick the
variant:

=========  ============  ==========  =======  =========  =====  ===========
family     norm          mlp         pos      prenorm    bias   embeddings
=========  ============  ==========  =======  =========  =====  ===========
GPT-1      layernorm     gelu_tanh   learned  False      True   tied
GPT-2/3    layernorm     gelu_tanh   learned  True       True   tied
LLaMA      rmsnorm       swiglu      rope     True       False  untied (GQA optional)
=========  ============  ==========  =======  =========  =====  ===========

``LlamaConfig`` is ``GPTConfig`` with LLaMA's defaults; the registry maps the arch
names ``gpt`` and ``llama`` to the two config classes and this one model class.

Speed notes (CPU-first, also fine on GPU): q, k, v come from one fused projection
and the SwiGLU gate and up projections from one fused matrix; attention is
``F.scaled_dot_product_attention`` with ``is_causal=True`` when no mask is needed;
RoPE uses precomputed real-valued cos/sin buffers in the rotate-half convention of
Hugging Face's LLaMA (so checkpoints map across without permuting q/k); nothing
runs per token in Python. Generation passes a ``KVCache`` (``models/kv_cache.py``)
which the attention writes in place.

Training batches may pack several documents per row (``doc_ids``), pad rows
(``attn_mask``) or carry their own positions (``position_ids``): then a boolean
(B, 1, T, T) mask from ``models/masks.py`` replaces ``is_causal``; ``branch_ids``
lays out one prompt with several answers in a row (the preference stages). Without them
the plain path above runs exactly as before. ``features`` returns the final
hidden states that ``lm_head`` reads (for reward/value heads, ``models/heads.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import ConfigError
from ..config import field_
from .ops import rms_norm, rms_scale, swiglu

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "gelu_tanh", "swiglu")
POSITIONS = ("learned", "rope")


@dataclass
class GPTConfig:
    """Shape and arch switches of a decoder; ``lmforge_model_config`` of gpt/llama checkpoints."""

    vocab_size: int = field_(50257, help="number of token ids", min=1)
    block_size: int = field_(1024, help="context length (longest sequence)", min=1)
    n_layer: int = field_(12, help="transformer blocks", min=1)
    n_head: int = field_(12, help="attention (query) heads", min=1)
    n_kv_head: int = field_(
        0, help="key/value heads for grouped-query attention (0: same as n_head)", min=0
    )
    d_model: int = field_(768, help="model width", min=1)
    d_ff: int = field_(
        0,
        help="feed-forward hidden size (0: 4*d_model for GELU, LLaMA's 8/3*d_model "
        "rounded up to multiple_of for SwiGLU)",
        min=0,
    )
    ffn_multiplier: float = field_(
        1.0, help="SwiGLU auto d_ff: scale 8/3*d_model by this (LLaMA-2 70B: 1.3)", min=0.01
    )
    multiple_of: int = field_(256, help="SwiGLU auto d_ff: round up to a multiple of this", min=1)
    norm: str = field_("layernorm", help="normalisation layer", choices=NORMS)
    norm_eps: float = field_(1e-5, help="normalisation epsilon", min=0.0)
    mlp: str = field_(
        "gelu_tanh", help="feed-forward: GELU (exact or tanh approximation) or SwiGLU", choices=MLPS
    )
    pos: str = field_("learned", help="positions: learned absolute or rotary", choices=POSITIONS)
    rope_theta: float = field_(10000.0, help="RoPE base frequency", min=1.0)
    prenorm: bool = field_(True, help="pre-norm blocks (GPT-2+); False: post-norm (GPT-1)")
    bias: bool = field_(True, help="biases in linear and LayerNorm layers")
    tie_embeddings: bool = field_(True, help="share the token embedding with the output layer")
    dropout: float = field_(0.0, help="dropout probability (training only)", min=0.0, max=1.0)
    init_std: float = field_(0.02, help="std of the normal weight init", min=0.0)

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def ffn_hidden(self) -> int:
        """The feed-forward hidden size: d_ff, or the arch's default rule when d_ff is 0."""
        if self.d_ff:
            return self.d_ff
        if self.mlp != "swiglu":
            return 4 * self.d_model
        # LLaMA: 2/3 of 4d keeps SwiGLU's three matrices at the cost of GELU's two.
        hidden = int(self.ffn_multiplier * int(2 * 4 * self.d_model / 3))
        return self.multiple_of * math.ceil(hidden / self.multiple_of)

    def validate(self) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(
                "n_head", f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.n_head % self.kv_heads:
            raise ConfigError(
                "n_kv_head",
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.kv_heads})",
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ConfigError(
                "n_head", f"RoPE needs an even head size, got d_model/n_head = {self.head_dim}"
            )


@dataclass
class LlamaConfig(GPTConfig):
    """GPTConfig with LLaMA's defaults: RMSNorm, SwiGLU, RoPE, no biases, untied embeddings."""

    vocab_size: int = field_(32000, help="number of token ids", min=1)
    block_size: int = field_(2048, help="context length (longest sequence)", min=1)
    norm: str = field_("rmsnorm", help="normalisation layer", choices=NORMS)
    norm_eps: float = field_(1e-6, help="normalisation epsilon", min=0.0)
    mlp: str = field_(
        "swiglu", help="feed-forward: GELU (exact or tanh approximation) or SwiGLU", choices=MLPS
    )
    pos: str = field_("rope", help="positions: learned absolute or rotary", choices=POSITIONS)
    bias: bool = field_(False, help="biases in linear and LayerNorm layers")
    tie_embeddings: bool = field_(False, help="share the token embedding with the output layer")


def _norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 like the LLaMA reference."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        # eps as a 0-d tensor lets addcmul add it without a kernel of its own.
        self.register_buffer("eps_t", torch.tensor(eps, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            xf = x.float()
            return self.weight * (xf * rms_scale(xf, self.eps_t)).to(x.dtype)
        return rms_norm(x, self.weight, self.eps_t)


def rope_tables(head_dim: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sign-folded sin tables (length, head_dim) for `apply_rope`.

    Rotate-half convention: dimension i pairs with i + head_dim/2. The sign of
    rotate_half is folded into the first half of ``sin`` so that applying RoPE is
    one roll, one multiply and one fused multiply-add.
    """
    steps = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu")
    inv_freq = 1.0 / (theta ** (steps / head_dim))
    positions = torch.arange(length, dtype=torch.float32, device="cpu")
    freqs = positions[:, None] * inv_freq[None, :]  # (T, hd/2)
    cos = torch.cat([freqs.cos(), freqs.cos()], dim=-1)
    sin = torch.cat([-freqs.sin(), freqs.sin()], dim=-1)
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = roll(x) and the sign inside sin."""
    # x: (B, T, h, hd); cos/sin broadcast as (T, 1, hd) or (B, T, 1, hd)
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), sin)


class Attention(nn.Module):
    """Causal multi-head (or grouped-query) self-attention with an optional KV cache."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.rope = cfg.pos == "rope"
        self.gqa = self.n_kv_head != self.n_head
        self.dropout = cfg.dropout
        qkv_out = (self.n_head + 2 * self.n_kv_head) * self.head_dim
        self.qkv = nn.Linear(cfg.d_model, qkv_out, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x, B: int, T: int, cos, sin, kv, start: int, mask, is_causal: bool):
        # x: (B*T, C). narrow/split/view rather than [..] indexing: at batch 1 a decode
        # step is dispatch-bound, and these are the cheapest ways to take views.
        H, Hkv = self.n_head, self.n_kv_head
        qkv = self.qkv(x).view(B, T, H + 2 * Hkv, self.head_dim)  # (B, T, H+2Hkv, hd)
        # split, not narrow: its backward concatenates the gradients instead of
        # adding zero-padded copies of them.
        if self.rope:
            qk, v = qkv.split((H + Hkv, Hkv), dim=2)
            # Rotate q and k together: one set of ops for both.
            q, k = apply_rope(qk, cos, sin).split((H, Hkv), dim=2)  # (B, T, h, hd)
        else:
            q, k, v = qkv.split((H, Hkv, Hkv), dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, T, hd)
        if kv is not None:
            k_cache, v_cache = kv  # (B, Hkv, max_T, hd), written in place
            k_cache.narrow(2, start, T).copy_(k)
            v_cache.narrow(2, start, T).copy_(v)
            k, v = k_cache.narrow(2, 0, start + T), v_cache.narrow(2, 0, start + T)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            enable_gqa=self.gqa,
        )  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B * T, H * self.head_dim))  # (B*T, C)


class MLP(nn.Module):
    """GELU MLP (GPT) or SwiGLU (LLaMA; gate and up projections fused in `fc`)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        hidden = cfg.ffn_hidden
        self.swiglu = cfg.mlp == "swiglu"
        self.approximate = "tanh" if cfg.mlp == "gelu_tanh" else "none"
        self.fc = nn.Linear(cfg.d_model, 2 * hidden if self.swiglu else hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # (N, hidden) or (N, 2*hidden)
        if self.swiglu:
            h = swiglu(h)
        else:
            h = F.gelu(h, approximate=self.approximate)
        return self.proj(h)


class Block(nn.Module):
    """Attention + MLP with residuals; pre-norm (GPT-2, LLaMA) or post-norm (GPT-1)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.prenorm = cfg.prenorm
        self.norm1 = _norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = _norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None

    def forward(self, x, B, T, cos, sin, kv, start, mask, is_causal) -> torch.Tensor:
        # x: (B*T, C), the residual stream
        if self.prenorm:
            a = self.attn(self.norm1(x), B, T, cos, sin, kv, start, mask, is_causal)
            x = x + (self.drop(a) if self.drop is not None else a)
            m = self.mlp(self.norm2(x))
            return x + (self.drop(m) if self.drop is not None else m)
        a = self.attn(x, B, T, cos, sin, kv, start, mask, is_causal)
        x = self.norm1(x + (self.drop(a) if self.drop is not None else a))
        m = self.mlp(x)
        return self.norm2(x + (self.drop(m) if self.drop is not None else m))


class GPT(nn.Module):
    """A GPT-1/2/3 or LLaMA decoder: ``forward(ids, targets=None, kv_cache=None, *, ...)``.

    ``features(ids, ...)`` gives the hidden states (B, T, C) after the final norm;
    ``forward`` is those features through ``lm_head`` (one shared ``_trunk``).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        config.validate()
        self.config = cfg = config
        # Tables start empty (`_weight`): reset_parameters fills them, and on the meta
        # device nn.Embedding's own normal_ init would import torch's compiler stack.
        self.tok_emb = nn.Embedding(
            cfg.vocab_size, cfg.d_model, _weight=torch.empty(cfg.vocab_size, cfg.d_model)
        )
        self.pos_emb = (
            nn.Embedding(
                cfg.block_size, cfg.d_model, _weight=torch.empty(cfg.block_size, cfg.d_model)
            )
            if cfg.pos == "learned"
            else None
        )
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        # Post-norm blocks end in a norm already (GPT-1 has no final LayerNorm).
        self.norm_f = _norm(cfg) if cfg.prenorm else None
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        if cfg.pos == "rope":
            # Computed on the CPU in float32 (exactly as the reference does), then moved.
            device = self.tok_emb.weight.device
            if device.type == "meta":  # shapes only (model info, memory estimates)
                cos = sin = torch.empty(cfg.block_size, cfg.head_dim, device=device)
            else:
                tables = rope_tables(cfg.head_dim, cfg.block_size, cfg.rope_theta)
                cos, sin = (t.to(device) for t in tables)
            # (block_size, 1, hd): a slice broadcasts over heads as it is.
            self.register_buffer("rope_cos", cos[:, None], persistent=False)
            self.register_buffer("rope_sin", sin[:, None], persistent=False)
        else:
            self.rope_cos = self.rope_sin = None
        # On the meta device (sizes only, `lmforge model info`) there is nothing to fill.
        if self.tok_emb.weight.device.type != "meta":
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, init_std), residual projections scaled by 1/sqrt(2 n_layer)."""
        std = self.config.init_std
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, RMSNorm)):
                nn.init.ones_(m.weight)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        # Each block adds two projections to the residual stream: keep its variance flat.
        for block in self.blocks:
            for p in (block.attn.proj.weight, block.mlp.proj.weight):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layer))

    @property
    def max_seq_len(self) -> int:
        """The longest sequence the model accepts (the generation engine reads it)."""
        return self.config.block_size

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (tied weights once); non_embedding drops token and position tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if self.pos_emb is not None:
                n -= self.pos_emb.weight.numel()
        return n

    def new_kv_cache(self, batch_size: int, max_len: int, pad_lens: list[int] | None = None):
        """An empty KV cache for `batch_size` rows of up to `max_len` tokens (left padding ok)."""
        from .kv_cache import KVCache

        cfg = self.config
        p = self.lm_head.weight
        return KVCache(
            cfg.n_layer,
            batch_size,
            cfg.kv_heads,
            cfg.head_dim,
            max_len,
            dtype=p.dtype,
            device=p.device,
            pad_lens=pad_lens,
        )

    def _trunk(
        self,
        ids: torch.Tensor,
        kv_cache,
        position_ids: torch.Tensor | None,
        doc_ids: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        branch_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings and blocks: the residual stream (B*T, C) before the final norm."""
        B, T = ids.shape
        x = self.tok_emb(ids)  # (B, T, C)
        start, positions, mask = 0, None, None
        packed = (position_ids, doc_ids, attn_mask, branch_ids)
        if kv_cache is not None:
            if any(t is not None for t in packed):
                raise ValueError(
                    "position_ids, doc_ids, attn_mask and branch_ids are for the cache-free "
                    "(training) forward; a KV cache carries its own positions and padding"
                )
            start = kv_cache.pos
            positions = kv_cache.positions(start, T)  # None unless rows are left-padded
            mask = kv_cache.attn_mask(start, T)  # None when plain causal (or one query) suffices
        elif any(t is not None for t in packed):
            positions, mask = self._packed_positions_and_mask(*packed, B, T)
        # A cache that supplies per-row positions may use more columns than the context
        # (a server's batch cache); its positions, not its columns, must fit.
        if positions is None and start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds the context of {self.config.block_size}"
            )
        cos = sin = None
        if self.pos_emb is not None:
            if positions is None:
                x = x + self.pos_emb.weight.narrow(0, start, T)  # (T, C) broadcast
            else:
                x = x + self.pos_emb(positions)  # (B, T, C)
        elif positions is None:
            cos = self.rope_cos.narrow(0, start, T)  # (T, 1, hd)
            sin = self.rope_sin.narrow(0, start, T)
        else:
            cos = self.rope_cos[positions]  # (B, T, 1, hd)
            sin = self.rope_sin[positions]
        if self.drop is not None:
            x = self.drop(x)
        # Without a mask the cache promises start == 0 or a single query, so T decides. (Not
        # `start == 0`: under torch.compile `start` is symbolic and SDPA needs a plain bool.)
        is_causal = mask is None and T > 1
        # The residual stream is kept 2-D, (B*T, C): each linear is then a single matmul.
        x = x.reshape(B * T, -1)
        layers = kv_cache.layers if kv_cache is not None else None
        for i, block in enumerate(self.blocks):
            kv = layers[i] if layers is not None else None
            x = block(x, B, T, cos, sin, kv, start, mask, is_causal)
        if kv_cache is not None:
            kv_cache.pos = start + T
        return x

    @staticmethod
    def _packed_positions_and_mask(position_ids, doc_ids, attn_mask, branch_ids, B: int, T: int):
        """(positions (B, T) or None, mask (B, 1, T, T) or None) for packed/padded/branched rows."""
        from .masks import (
            branch_mask,
            branch_positions,
            document_mask,
            document_positions,
            padding_positions,
        )

        named = (("position_ids", position_ids), ("doc_ids", doc_ids),
                 ("attn_mask", attn_mask), ("branch_ids", branch_ids))  # fmt: skip
        for name, t in named:
            if t is not None and tuple(t.shape) != (B, T):
                raise ValueError(f"{name} must be (B, T) = ({B}, {T}), got {tuple(t.shape)}")
        if branch_ids is not None:
            if doc_ids is not None:
                raise ValueError("branch_ids and doc_ids do not combine: one layout per row")
            positions = position_ids if position_ids is not None else branch_positions(branch_ids)
            return positions, branch_mask(branch_ids, attn_mask)
        positions = position_ids
        if positions is None:
            if doc_ids is not None:
                positions = document_positions(doc_ids)
            else:
                positions = padding_positions(attn_mask)
        mask = None
        if doc_ids is not None or attn_mask is not None:
            mask = document_mask(doc_ids, attn_mask)  # (B, 1, T, T)
        return positions, mask

    def features(
        self,
        ids: torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        branch_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final hidden states (B, T, C), after the final norm: what ``lm_head`` reads.

        The keyword arguments mean what they mean in ``forward``; reward and value
        heads (``lmforge.models.heads``) read these features.
        """
        B, T = ids.shape
        x = self._trunk(ids, None, position_ids, doc_ids, attn_mask, branch_ids)
        if self.norm_f is not None:
            x = self.norm_f(x)
        return x.view(B, T, -1)

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache=None,
        *,
        last_only: bool = False,
        position_ids: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        branch_ids: torch.Tensor | None = None,
        reduction: str = "mean",
        targets_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) and the cross-entropy over targets != -100 (or None).

        With ``kv_cache`` the tokens continue the cached ones (positions start at
        ``kv_cache.pos``) and their keys/values are written into the cache.
        ``last_only`` projects only the last position: logits (B, 1, V).

        Packed and padded training batches (no cache; see ``lmforge.models.masks``):
        ``doc_ids`` (B, T) marks the documents packed into each row (attention stays
        inside a document, positions restart at each document start); ``attn_mask``
        (B, T) marks real tokens (True/1) vs padding, which is never attended to;
        ``position_ids`` (B, T) overrides the positions (learned and RoPE alike);
        ``branch_ids`` (B, T) lays out a shared prefix and branches that continue it
        (a prompt and two answers, each answer seeing the prompt but not the other).
        Without any of them the plain causal path runs, untouched.

        ``reduction``: ``"mean"`` (default) or ``"sum"`` of the per-target losses, or
        ``"none"``: each target's loss, flat.
        ``targets_only`` (with ``targets``): project only the positions whose target
        counts, so a batch that trains few of its tokens (SFT: the answers) skips
        most of the output layer; logits are then (N_targets, V). The index is
        data-dependent (a host sync on a GPU).
        """
        B, T = ids.shape
        x = self._trunk(ids, kv_cache, position_ids, doc_ids, attn_mask, branch_ids)
        if targets_only and targets is not None:
            keep = (targets != -100).reshape(-1)  # (B*T,)
            x, kept = x.reshape(B * T, -1)[keep], targets.reshape(-1)[keep]  # (N, C), (N,)
            if self.norm_f is not None:
                x = self.norm_f(x)
            logits = self.lm_head(x)  # (N, V)
            return logits, lm_loss(logits, kept, reduction)
        T_out = T
        if last_only and T > 1:
            x, T_out = x.view(B, T, -1)[:, -1], 1  # (B, C)
        if self.norm_f is not None:
            x = self.norm_f(x)
        logits = self.lm_head(x).view(B, T_out, -1)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets, reduction)
        return logits, loss


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits (..., V) against targets (...), -100 ignored, in float32.

    ``reduction`` ``"mean"`` averages over the targets that are not -100, ``"sum"``
    adds them (the loss of a packed batch then equals the sum over its documents),
    ``"none"`` gives each position's loss, flat (N,), 0 where the target is -100
    (DPO and PPO sum log-probabilities per sequence from these).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    flat = logits.reshape(-1, logits.size(-1))
    if flat.dtype != torch.float32:
        flat = flat.float()
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=-100, reduction=reduction)
