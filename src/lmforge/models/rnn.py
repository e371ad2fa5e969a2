"""Recurrent language model: Elman RNN, LSTM or GRU, several layers, optional attention.

The recurrence is torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` over the whole
window. With ``attention=True`` a causal multi-head attention layer reads the top
layer's outputs over a sliding window of the last ``attn_window`` positions and is
added back residually. The attention does not feed into the recurrence (no
"input feeding"), which keeps the recurrence on the fused kernel and lets the
attention run as one batched matmul over the window instead of a Python loop over
time steps.

The recurrent state plays the role of a transformer's KV cache: ``forward(ids,
kv_cache=state)`` starts from ``state`` and leaves the state after the last token
in it, so

* generation feeds the prompt once and then one token at a time with the same
  ``RNNState`` (``model.init_state(batch_size)`` makes an empty one);
* training with truncated back-propagation through time carries the state between
  consecutive windows and calls ``state.detach_()`` between them
  (``lmforge.train.recurrent_lm.RecurrentLMObjective``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import ConfigError
from ..config import field_
from .gpt import lm_loss


@dataclass
class RNNConfig:
    """Shape of a recurrent LM; ``lmforge_model_config`` of an ``rnn`` checkpoint."""

    vocab_size: int = field_(8192, help="number of token ids", min=1)
    block_size: int = field_(
        128, help="training window length (the RNN itself has no length limit)", min=1
    )
    cell: str = field_("lstm", help="recurrent cell", choices=["rnn", "lstm", "gru"])
    n_layer: int = field_(2, help="stacked recurrent layers", min=1)
    d_model: int = field_(256, help="hidden size of each recurrent layer", min=1)
    d_embed: int = field_(256, help="token embedding size", min=1)
    dropout: float = field_(
        0.0, help="dropout on embeddings, between layers and on outputs", min=0.0, max=1.0
    )
    tie_embeddings: bool = field_(True, help="share the token embedding with the output layer")
    attention: bool = field_(False, help="causal attention over past top-layer hidden states")
    attn_window: int = field_(64, help="positions each step attends to (itself included)", min=2)
    n_head: int = field_(4, help="attention heads (with --attention)", min=1)

    def validate(self) -> None:
        if self.attention and self.d_model % self.n_head:
            raise ConfigError(
                "n_head", f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )


class RNNState:
    """The recurrent state after the tokens seen so far: the RNN's "KV cache".

    ``h`` is ``(n_layer, B, d_model)`` (the layout of torch's fused RNNs), ``c`` the
    LSTM cell state of the same shape (``None`` for rnn/gru), ``memory`` the last
    ``attn_window - 1`` top-layer outputs ``(B, M, d_model)`` when attention is on
    (else ``None``), ``pos`` the number of tokens consumed.
    """

    def __init__(self, h: torch.Tensor, c: torch.Tensor | None, memory: torch.Tensor | None):
        self.h, self.c, self.memory = h, c, memory
        self.pos = 0

    @property
    def batch_size(self) -> int:
        return self.h.shape[1]

    def detach_(self) -> RNNState:
        """Cut the graph to earlier windows (truncated BPTT); values are kept."""
        self.h = self.h.detach()
        self.c = None if self.c is None else self.c.detach()
        self.memory = None if self.memory is None else self.memory.detach()
        return self

    def reorder_(self, index: torch.Tensor) -> RNNState:
        """Keep/reorder batch rows (beam search, dropping finished rows)."""
        self.h = self.h.index_select(1, index)
        self.c = None if self.c is None else self.c.index_select(1, index)
        self.memory = None if self.memory is None else self.memory.index_select(0, index)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"h": self.h.detach().cpu(), "pos": torch.tensor(self.pos)}
        if self.c is not None:
            out["c"] = self.c.detach().cpu()
        if self.memory is not None:
            out["memory"] = self.memory.detach().cpu()
        return out

    @classmethod
    def from_state_dict(cls, d: dict[str, torch.Tensor], device: torch.device | str = "cpu"):
        state = cls(
            d["h"].to(device),
            d["c"].to(device) if "c" in d else None,
            d["memory"].to(device) if "memory" in d else None,
        )
        state.pos = int(d["pos"])
        return state


class PastAttention(nn.Module):
    """Causal multi-head attention over a sliding window of past hidden states (pre-LN, residual)."""

    def __init__(self, cfg: RNNConfig):
        super().__init__()
        self.n_head, self.window = cfg.n_head, cfg.attn_window
        self.ln = nn.LayerNorm(cfg.d_model)
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(
        self, h: torch.Tensor, memory: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, T, C) this window's outputs, memory (B, M, C) earlier ones -> (out, new memory)."""
        B, T, C = h.shape
        full = h if memory is None else torch.cat([memory, h], dim=1)  # (B, M+T, C)
        M = full.shape[1] - T
        hd = C // self.n_head
        normed = self.ln(full)  # (B, M+T, C)
        q = self.q(normed[:, M:]).view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k, v = self.kv(normed).split(C, dim=2)
        k = k.view(B, M + T, self.n_head, hd).transpose(1, 2)  # (B, nh, M+T, hd)
        v = v.view(B, M + T, self.n_head, hd).transpose(1, 2)
        # Query i sits at absolute position M+i and sees keys j with M+i-W < j <= M+i.
        qpos = torch.arange(M, M + T, device=h.device).unsqueeze(1)  # (T, 1)
        kpos = torch.arange(M + T, device=h.device).unsqueeze(0)  # (1, M+T)
        allowed = (kpos <= qpos) & (kpos > qpos - self.window)  # (T, M+T)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)
        # Only the last W-1 outputs can be attended to by later positions.
        return h + self.proj(y), full[:, max(0, M + T - (self.window - 1)) :]


_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNLM(nn.Module):
    """Embedding -> stacked RNN/LSTM/GRU -> [window attention] -> [projection] -> vocabulary."""

    def __init__(self, cfg: RNNConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_embed)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = _CELLS[cfg.cell](
            input_size=cfg.d_embed,
            hidden_size=cfg.d_model,
            num_layers=cfg.n_layer,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
            batch_first=True,
        )
        self.attn = PastAttention(cfg) if cfg.attention else None
        # A tied output layer reads d_embed-sized vectors, so project the hidden state down.
        out_dim = cfg.d_embed if cfg.tie_embeddings else cfg.d_model
        self.proj = nn.Linear(cfg.d_model, out_dim) if out_dim != cfg.d_model else None
        self.lm_head = nn.Linear(out_dim, cfg.vocab_size, bias=False)
        self._init_weights()
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def _init_weights(self) -> None:
        # Unit-variance embeddings (torch's default) keep the gates' pre-activations in
        # their responsive range; with a small init (e.g. +-0.1) the first layer barely
        # sees its input and training stalls at the unigram distribution.
        nn.init.normal_(self.tok_emb.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=self.lm_head.in_features**-0.5)
        bound = 1.0 / math.sqrt(self.config.d_model)
        for name, p in self.rnn.named_parameters():
            nn.init.uniform_(p, -bound, bound)
            if self.config.cell == "lstm" and name.startswith("bias_ih"):
                # Forget-gate bias 1 (gate order i, f, g, o): remember by default, so
                # gradients flow through long windows from the first step.
                H = self.config.d_model
                with torch.no_grad():
                    p[H : 2 * H].fill_(1.0)
        for mod in [self.attn, self.proj]:
            if mod is None:
                continue
            for sub in mod.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, std=0.02)
                    nn.init.zeros_(sub.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (tied weights once); non_embedding drops the token table."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_emb.weight.numel() if non_embedding else n

    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> RNNState:
        """An all-zero state (the start of a text) for ``batch_size`` rows."""
        ref = self.tok_emb.weight
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        cfg = self.config
        shape = (cfg.n_layer, batch_size, cfg.d_model)
        h = torch.zeros(shape, device=device, dtype=dtype)
        c = torch.zeros(shape, device=device, dtype=dtype) if cfg.cell == "lstm" else None
        mem = (
            torch.zeros(batch_size, 0, cfg.d_model, device=device, dtype=dtype)
            if cfg.attention
            else None
        )
        return RNNState(h, c, mem)

    # The generation engine (lmforge.inference.engine) reads these two.
    max_seq_len = None  # no context limit: the state summarises everything before

    def new_kv_cache(
        self, batch_size: int, max_len: int, pad_lens: list[int] | None = None
    ) -> RNNState:
        """The engine's cache: a zero state. ``max_len`` is irrelevant to a recurrence.

        Left-padded batches are refused (NotImplementedError, the engine then runs
        rows one at a time): pad tokens would flow through the recurrence and change
        the state, unlike a transformer where a mask hides them.
        """
        if pad_lens and any(pad_lens):
            raise NotImplementedError("a recurrent state cannot skip left padding")
        return self.init_state(batch_size)

    def features(
        self,
        ids: torch.Tensor,
        kv_cache: RNNState | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> the top layer's outputs (B, T, d_model), before dropout and lm_head.

        ``attn_mask`` (B, T) is accepted for heads over right-padded batches: a
        recurrence reads left to right, so padding after a row's last real token
        never changes the real positions, and the mask needs no work (left padding
        would; it is refused).
        """
        if attn_mask is not None and attn_mask.shape[1] and not bool(attn_mask[:, 0].all()):
            raise ValueError("a recurrent model takes right padding only (row starts with padding)")
        B, T = ids.shape
        x = self.drop(self.tok_emb(ids))  # (B, T, E)
        hx = None
        if kv_cache is not None:
            if kv_cache.batch_size != B:
                raise ValueError(f"state has {kv_cache.batch_size} rows, ids has {B}")
            hx = (kv_cache.h, kv_cache.c) if self.config.cell == "lstm" else kv_cache.h
        out, hn = self.rnn(x, hx)  # (B, T, H)
        memory = kv_cache.memory if kv_cache is not None else None
        if self.attn is not None:
            out, memory = self.attn(out, memory)  # (B, T, H)
        if kv_cache is not None:
            if self.config.cell == "lstm":
                kv_cache.h, kv_cache.c = hn
            else:
                kv_cache.h = hn
            kv_cache.memory = memory
            kv_cache.pos += T
        return out

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: RNNState | None = None,
        *,
        last_only: bool = False,
        reduction: str = "mean",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) -> logits (B, T, V), cross-entropy over targets != -100 (or None).

        With ``kv_cache`` the window continues from that state and the state after
        the window is written back into it. ``last_only`` projects only the last
        position: logits (B, 1, V). ``reduction``: ``"mean"`` (default) or ``"sum"``.
        """
        out = self.features(ids, kv_cache)
        if last_only:
            out = out[:, -1:]
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        logits = self.lm_head(out)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets, reduction)
        return logits, loss
