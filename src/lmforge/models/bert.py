"""BERT-style bidirectional encoder with a masked-LM head.

Post-LayerNorm transformer as in Devlin et al. (2018): token + learned position +
segment (token type) embeddings, LayerNorm, ``n_layer`` blocks of full
(non-causal) self-attention and a GELU MLP, then the masked-LM head: dense + GELU
+ LayerNorm, and a decoder tied to the token embedding with its own bias.

The layout mirrors Hugging Face ``BertForMaskedLM`` one module for one module,
except that query/key/value are one fused ``qkv`` linear (one matmul instead of
three), so ``lmforge.export.hf_bert`` only renames and splits weights and the
exported model gives the same logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import ConfigError, LmforgeError
from ..config import field_
from .gpt import lm_loss


@dataclass
class BertConfig:
    """Shape of a BERT encoder; ``lmforge_model_config`` of a ``bert`` checkpoint."""

    vocab_size: int = field_(8192, help="number of token ids", min=1)
    block_size: int = field_(128, help="maximum sequence length (learned positions)", min=1)
    type_vocab_size: int = field_(2, help="number of segments (token types)", min=1)
    n_layer: int = field_(4, help="transformer blocks", min=1)
    n_head: int = field_(4, help="attention heads", min=1)
    d_model: int = field_(256, help="hidden size", min=1)
    d_ff: int = field_(1024, help="intermediate (MLP) size", min=1)
    dropout: float = field_(
        0.1, help="dropout on embeddings, attention and residuals", min=0.0, max=1.0
    )
    layer_norm_eps: float = field_(1e-12, help="LayerNorm epsilon", min=0.0)
    activation: str = field_(
        "gelu", help="gelu (exact, erf) or gelu_tanh (approximation)", choices=["gelu", "gelu_tanh"]
    )

    def validate(self) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(
                "n_head", f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )


def _gelu(x: torch.Tensor, kind: str) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if kind == "gelu_tanh" else "none")


class EncoderBlock(nn.Module):
    """Self-attention and MLP, each followed by residual add + LayerNorm (post-LN)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.n_head, self.activation, self.p = cfg.n_head, cfg.activation, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln_attn = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(cfg.d_model, cfg.d_ff)
        self.ff_out = nn.Linear(cfg.d_ff, cfg.d_model)
        self.ln_ff = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C); key_mask (B, 1, 1, T) bool, True where a key may be attended."""
        B, T, C = x.shape
        hd = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.p if self.training else 0.0
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = self.ln_attn(x + self.drop(self.attn_out(y)))
        h = _gelu(self.ff_in(x), self.activation)  # (B, T, d_ff)
        return self.ln_ff(x + self.drop(self.ff_out(h)))


class BertMLM(nn.Module):
    """Bidirectional encoder + masked-LM head: ids (B, T) -> logits (B, T, V)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
        self.type_emb = nn.Embedding(cfg.type_vocab_size, cfg.d_model)
        self.ln_emb = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([EncoderBlock(cfg) for _ in range(cfg.n_layer)])
        # Masked-LM head (BERT's cls.predictions): transform, then tied decoder + bias.
        self.head_dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.head_ln = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.head_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # BERT's initializer: N(0, 0.02) weights, zero biases, identity LayerNorms.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (the tied decoder once); non_embedding drops token and position tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return n

    def encode(
        self,
        ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> final hidden states (B, T, C), before the MLM head."""
        B, T = ids.shape
        if T > self.config.block_size:
            raise LmforgeError(
                f"sequence of {T} tokens is longer than the model's block_size "
                f"({self.config.block_size}); shorten the input"
            )
        pos = torch.arange(T, device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(pos)  # (B, T, C)
        if token_type_ids is None:
            x = x + self.type_emb.weight[0]
        else:
            x = x + self.type_emb(token_type_ids)
        x = self.drop(self.ln_emb(x))
        key_mask = None
        if attention_mask is not None:
            key_mask = attention_mask.bool().view(B, 1, 1, T)  # padding keys are never attended
        for block in self.blocks:
            x = block(x, key_mask)
        return x

    def features(
        self,
        ids: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``encode`` under the keyword names the decoders use (heads call this)."""
        return self.encode(ids, token_type_ids, attn_mask)

    def forward(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: object | None = None,
        *,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) -> logits (B, T, V), cross-entropy over targets != -100 (or None).

        For masked-LM training ``targets`` holds the original id at the chosen
        positions and -100 elsewhere (``lmforge.train.masked_lm``). ``reduction``:
        ``"mean"`` (default) or ``"sum"`` of the per-target losses.
        """
        if kv_cache is not None:
            raise LmforgeError(
                "a BERT model is a bidirectional encoder and cannot generate text "
                "token by token; use `lmforge fill-mask` instead"
            )
        x = self.encode(ids, token_type_ids, attention_mask)
        h = _gelu(self.head_dense(x), self.config.activation)
        h = self.head_ln(h)
        logits = F.linear(h, self.tok_emb.weight, self.head_bias)  # (B, T, V), tied decoder
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets, reduction)
        return logits, loss


# --- fill-mask -------------------------------------------------------------------

# What users type for a blank; the tokenizer's own mask token (<|mask|>) works too.
MASK_LITERAL = "[MASK]"


def encode_with_masks(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with each ``[MASK]`` as the tokenizer's mask id, framed by EOS.

    The text is framed by EOS on both sides because pretraining streams are
    ``doc EOS doc EOS ...``: that is how the model saw a document start and end.
    A space just before a blank is dropped (except for character tokenizers):
    BPE and unigram pieces carry their leading space, so the blank stands for
    " paris", and a lone space token in front of it would be text never seen.
    """
    mask_id = tokenizer.mask_id
    if mask_id is None:
        raise LmforgeError(
            "the tokenizer has no <|mask|> token; this is not a masked-LM run's tokenizer"
        )
    mask_token = tokenizer.id_to_token(mask_id)
    pieces = re.split(f"{re.escape(MASK_LITERAL)}|{re.escape(mask_token)}", text)
    if len(pieces) == 1:
        raise LmforgeError(f"no {MASK_LITERAL} in the text; write e.g. 'ann lives in [MASK].'")
    keep_space = getattr(tokenizer, "kind", "") == "char"
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if i > 0:
            ids.append(mask_id)
        if i < len(pieces) - 1 and not keep_space:
            piece = piece.rstrip(" ")
        ids.extend(tokenizer.encode(piece))
    eos = tokenizer.eos_id
    return [eos, *ids, eos] if eos is not None else ids


@torch.no_grad()
def fill_mask(
    model: BertMLM, tokenizer: Any, text: str, top_k: int = 5
) -> tuple[list[int], list[list[tuple[int, float]]]]:
    """(input ids, for each blank in order its `top_k` (token id, probability) pairs)."""
    if top_k < 1:
        raise LmforgeError(f"top-k must be at least 1, got {top_k}")
    ids = encode_with_masks(tokenizer, text)
    device = model.tok_emb.weight.device
    x = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(x)  # (1, T, V)
    finally:
        model.train(was_training)
    positions = (x[0] == tokenizer.mask_id).nonzero().squeeze(1).tolist()
    probs = logits[0, positions].float().softmax(-1)  # (n_masks, V)
    # A blank is filled with an ordinary token, never a special one.
    probs[:, sorted(_special_ids(tokenizer, probs.shape[-1]))] = 0.0
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return ids, [list(zip(i.tolist(), p.tolist())) for i, p in zip(top.indices, top.values)]


def _special_ids(tokenizer: Any, vocab_size: int) -> set[int]:
    roles = ("pad", "bos", "eos", "unk", "system", "user", "assistant", "end", "mask")
    found = {tokenizer.special_id(r) for r in roles}
    return {i for i in found if i is not None and i < vocab_size}
