"""Prompt tuning: trainable soft tokens in front of a frozen model's embedding.

``attach_soft_prompt(model, n_before=10, n_after=10)`` replaces ``model.tok_emb``
by a `SoftPromptEmbedding` that looks real ids (< vocab) up in the original,
frozen table (the same Parameter: tied output layers and state-dict names are
unchanged) and *virtual* ids ``vocab .. vocab+n-1`` in a trainable (n, d) table
``tok_emb.soft``. A sequence carries virtual ids where the soft tokens go
(`SoftPrompt.surround`: before + query + after + label), so everything
downstream — the KV cache, the generation engine, label scoring, the output
layer (which still scores only the vocab's ids) — runs unchanged. The model is
not copied and, for ids < vocab, computes exactly what it computed before.

Initialisation (``init``): ``"vocab"`` copies rows of the embedding table drawn
at random (seeded; ``init_ids`` limits the pool), ``"random"`` draws from
N(0, std of the table) (the table's own scale, not N(0, 1), which would dwarf a
small model's embeddings), ``"labels"`` puts the label words' embeddings
(``init_ids``) into the tokens after the query, next to where the answer
comes, and sampled vocabulary rows elsewhere (Lester et al. 2021's class-label
init).

``save_soft_prompt(path, soft, base)`` writes a small safetensors file (the
(n, d) table) whose metadata names the model it belongs to (d_model, vocab,
the base run's weights sha256 and tokenizer hash); ``load_soft_prompt(path,
model, run)`` refuses a file made for another model, naming both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import ConfigError, LmforgeError

INITS = ("vocab", "random", "labels")
SOFT_PROMPT_FILE = "soft_prompt.safetensors"  # runs/layout.py lists the same name
META_SOFT_FILE = "lmforge_soft_prompt_file"  # metadata key of a saved soft prompt
TENSOR = "soft_prompt"


class SoftPromptEmbedding(nn.Module):
    """Token embedding for ids < vocab (frozen table) and virtual ids vocab.. (trainable)."""

    def __init__(self, emb: nn.Module, n_before: int, n_after: int):
        super().__init__()
        self.weight = emb.weight  # the original Parameter: ties and names are kept
        self.num_embeddings = emb.weight.shape[0]  # the real vocabulary
        self.embedding_dim = emb.weight.shape[1]
        self.n_before, self.n_after = int(n_before), int(n_after)
        n = self.n_before + self.n_after
        self.soft = nn.Parameter(
            torch.zeros(n, self.embedding_dim, device=emb.weight.device, dtype=emb.weight.dtype)
        )

    @property
    def n_virtual(self) -> int:
        return self.n_before + self.n_after

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        V = self.num_embeddings
        virtual = ids >= V  # (B, T)
        real = F.embedding(ids.masked_fill(virtual, 0), self.weight)  # (B, T, C)
        # An id past the soft table fails in the lookup, like an id past the vocab would.
        soft = F.embedding((ids - V).clamp(min=0), self.soft)  # (B, T, C)
        return torch.where(virtual.unsqueeze(-1), soft, real)

    def extra_repr(self) -> str:
        return f"vocab={self.num_embeddings}, d={self.embedding_dim}, soft={self.n_virtual}"


@dataclass(frozen=True)
class SoftLayout:
    """Where soft tokens go in a sequence: the virtual ids, without a model.

    Virtual id ``vocab + i`` is row i of the soft table: rows 0..n_before-1 go
    before the query, the rest after it.
    """

    vocab: int
    n_before: int
    n_after: int

    @property
    def n_virtual(self) -> int:
        return self.n_before + self.n_after

    @property
    def ids_before(self) -> list[int]:
        return list(range(self.vocab, self.vocab + self.n_before))

    @property
    def ids_after(self) -> list[int]:
        start = self.vocab + self.n_before
        return list(range(start, start + self.n_after))

    def surround(self, query_ids: Sequence[int], label_ids: Sequence[int] = ()) -> list[int]:
        """virtual_before + query + virtual_after + label, as one id list."""
        return [*self.ids_before, *query_ids, *self.ids_after, *label_ids]


@dataclass
class SoftPrompt:
    """The soft tokens attached to a model: their virtual ids (`layout`) and their table."""

    module: SoftPromptEmbedding

    @property
    def layout(self) -> SoftLayout:
        m = self.module
        return SoftLayout(m.num_embeddings, m.n_before, m.n_after)

    @property
    def n_before(self) -> int:
        return self.module.n_before

    @property
    def n_after(self) -> int:
        return self.module.n_after

    @property
    def n_virtual(self) -> int:
        return self.module.n_virtual

    @property
    def vocab(self) -> int:
        return self.module.num_embeddings

    @property
    def weight(self) -> nn.Parameter:
        """The trainable (n_before + n_after, d) table."""
        return self.module.soft

    @property
    def ids_before(self) -> list[int]:
        return self.layout.ids_before

    @property
    def ids_after(self) -> list[int]:
        return self.layout.ids_after

    def surround(self, query_ids: Sequence[int], label_ids: Sequence[int] = ()) -> list[int]:
        """virtual_before + query + virtual_after + label, as one id list."""
        return self.layout.surround(query_ids, label_ids)


def _base(model: nn.Module) -> nn.Module:
    m = getattr(model, "_orig_mod", model)
    return m.base if not hasattr(m, "tok_emb") and hasattr(m, "base") else m


def soft_prompt_of(model: nn.Module) -> SoftPrompt | None:
    """The model's attached soft prompt, or None."""
    emb = getattr(_base(model), "tok_emb", None)
    return SoftPrompt(emb) if isinstance(emb, SoftPromptEmbedding) else None


def attach_soft_prompt(
    model: nn.Module,
    n_before: int = 10,
    n_after: int = 10,
    init: str = "vocab",
    init_ids: Sequence[int] | None = None,
    seed: int = 0,
) -> SoftPrompt:
    """Put `n_before + n_after` trainable soft tokens in front of `model`'s embedding.

    Freezes every parameter of the model; only the soft table trains. A model
    that already has a soft prompt gets a new one in its place.
    """
    m = _base(model)
    emb = getattr(m, "tok_emb", None)
    if emb is None or not hasattr(emb, "weight"):
        raise LmforgeError(f"{type(m).__name__} has no token embedding (tok_emb) to prompt-tune")
    if n_before < 0 or n_after < 0 or n_before + n_after < 1:
        raise ConfigError(
            "n_before", f"need at least one soft token (got {n_before} before, {n_after} after)"
        )
    if init not in INITS:
        raise ConfigError("init", f"must be one of {', '.join(INITS)}, got {init!r}")
    for p in getattr(model, "_orig_mod", model).parameters():
        p.requires_grad_(False)
    if isinstance(emb, SoftPromptEmbedding):
        emb = _plain_embedding(emb)
    new = SoftPromptEmbedding(emb, n_before, n_after)
    with torch.no_grad():
        new.soft.copy_(_init_table(emb.weight, n_before, n_after, init, init_ids, seed))
    m.tok_emb = new
    return SoftPrompt(new)


def _init_table(table, n_before, n_after, init, init_ids, seed) -> torch.Tensor:
    """(n, d) initial soft tokens, drawn on the CPU generator (same on every device)."""
    V, d = table.shape
    n = n_before + n_after
    g = torch.Generator().manual_seed(int(seed))
    w = table.detach().float().cpu()
    if init == "random":
        return (torch.randn(n, d, generator=g) * w.std()).to(table.dtype)
    pool = torch.arange(V)
    if init == "vocab" and init_ids:
        pool = _checked_ids(init_ids, V)
    rows = pool[torch.randint(len(pool), (n,), generator=g)]
    if init == "labels":
        if not init_ids:
            raise ConfigError("init", "labels: give the label words' token ids (init_ids)")
        labels = _checked_ids(init_ids, V)
        # The label words go after the query (next to the answer), cycled if there are
        # more soft tokens than label ids there; the tokens before keep sampled words.
        span = n_after if n_after else n
        start = n - span
        for i in range(span):
            rows[start + i] = labels[i % len(labels)]
    return w[rows].to(table.dtype)


def _checked_ids(ids: Sequence[int], vocab: int) -> torch.Tensor:
    t = torch.tensor(list(ids), dtype=torch.long)
    if t.numel() == 0 or bool(((t < 0) | (t >= vocab)).any()):
        raise ConfigError("init", f"init_ids must be token ids in [0, {vocab})")
    return t


def _plain_embedding(emb: SoftPromptEmbedding) -> nn.Embedding:
    plain = nn.Embedding(emb.num_embeddings, emb.embedding_dim, device="meta")
    plain.weight = emb.weight
    return plain


def detach_soft_prompt(model: nn.Module) -> nn.Module:
    """Take the soft prompt off (the original embedding back, same Parameter); in place."""
    m = _base(model)
    emb = getattr(m, "tok_emb", None)
    if isinstance(emb, SoftPromptEmbedding):
        m.tok_emb = _plain_embedding(emb)
    return model


# ---------------------------------------------------------------------------
# The small file beside a run


def run_identity(run: Any) -> dict[str, Any]:
    """{run, weights_sha256, tokenizer_hash} of a Run (`lmforge.runs.load_run`) or of its
    `parent_record` dict; `base_sha256` is the frozen base of a prompt-tune run."""
    if isinstance(run, Mapping):
        return {k: run.get(k) for k in ("run", "weights_sha256", "tokenizer_hash")}
    state = run.checkpoint.state
    info = state.get("files", {}).get("model.safetensors", {})
    ident = {
        "run": str(Path(run.path).resolve()),
        "weights_sha256": info.get("sha256"),
        "tokenizer_hash": run.tokenizer.hash,
    }
    parent = state.get("parent") or {}
    if state.get("stage") == "prompt-tune" and parent.get("weights_sha256"):
        ident["base_sha256"] = parent["weights_sha256"]  # its base weights are the parent's
    return ident


def save_soft_prompt(path: str | Path, soft: SoftPrompt, base: Any) -> Path:
    """Write `soft`'s table to `path` (safetensors, atomically) with what it belongs to.

    `base` is the run the soft prompt was trained on: a `Run`, or its
    `runs.parent_record` dict.
    """
    from .weights import write_safetensors

    ident = run_identity(base)
    meta = {
        "format": "pt",
        META_SOFT_FILE: json.dumps(
            {
                "n_before": soft.n_before,
                "n_after": soft.n_after,
                "d_model": soft.weight.shape[1],
                "vocab_size": soft.vocab,
                "base_run": ident.get("run"),
                "base_weights_sha256": ident.get("weights_sha256"),
                "base_tokenizer_hash": ident.get("tokenizer_hash"),
            },
            sort_keys=True,
        ),
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        table = soft.weight.detach().to("cpu", torch.float32).contiguous()
        write_safetensors({TENSOR: table}, tmp, meta)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def read_soft_prompt(path: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """(table (n, d), its metadata) of a soft-prompt file; one-line errors naming it."""
    from safetensors import safe_open

    p = Path(path)
    if p.is_dir():
        p = p / SOFT_PROMPT_FILE
    if not p.is_file():
        raise LmforgeError(f"{p}: no such soft-prompt file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            table = f.get_tensor(TENSOR) if TENSOR in f.keys() else None
    except Exception as e:  # safetensors' own error types
        why = " ".join(str(e).split())[:160]
        raise LmforgeError(f"{p}: not a readable safetensors file ({why})") from None
    if META_SOFT_FILE not in meta or table is None:
        raise LmforgeError(
            f"{p}: not a soft-prompt file (no {META_SOFT_FILE} metadata); make one with "
            "`lmforge prompt-tune`"
        )
    try:
        info = json.loads(meta[META_SOFT_FILE])
        n = int(info["n_before"]) + int(info["n_after"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise LmforgeError(f"{p}: {META_SOFT_FILE} metadata is damaged") from None
    if table.dim() != 2 or table.shape[0] != n or table.shape[1] != int(info.get("d_model", -1)):
        raise LmforgeError(
            f"{p}: the table's shape {tuple(table.shape)} does not match its metadata"
        )
    if not bool(torch.isfinite(table).all()):
        raise LmforgeError(f"{p}: the soft prompt contains NaN or inf")
    return table, info


def load_soft_prompt(path: str | Path, model: nn.Module, run: Any = None) -> SoftPrompt:
    """Attach the soft prompt saved at `path` to `model` (the model of `run`).

    Refuses (LmforgeError, one line) a file made for another model: another
    width or vocabulary, or — with `run` — another base run (weights sha256 or
    tokenizer hash), naming both.
    """
    table, info = read_soft_prompt(path)
    m = _base(model)
    cfg = getattr(m, "config", None)
    d_model, vocab = getattr(cfg, "d_model", None), getattr(cfg, "vocab_size", None)
    where = Path(path)
    if (info.get("d_model"), info.get("vocab_size")) != (d_model, vocab):
        raise LmforgeError(
            f"{where}: made for a model with d_model {info.get('d_model')} and vocabulary "
            f"{info.get('vocab_size')}, but this model has d_model {d_model} and vocabulary "
            f"{vocab}; use the soft prompt with the run it was trained on "
            f"({info.get('base_run')})"
        )
    if run is not None:
        ident = run_identity(run)
        want = info.get("base_weights_sha256")
        have = {ident.get("weights_sha256"), ident.get("base_sha256")} - {None}
        if want and have and want not in have:
            raise LmforgeError(
                f"{where}: made for the weights of {info.get('base_run')} (sha256 {want[:12]}), "
                f"but {ident.get('run')} has {str(ident.get('weights_sha256'))[:12]}; use the "
                "run it was trained on"
            )
        tok = info.get("base_tokenizer_hash")
        if tok and ident.get("tokenizer_hash") and tok != ident["tokenizer_hash"]:
            raise LmforgeError(
                f"{where}: made for tokenizer {tok}, but {ident.get('run')} uses "
                f"{ident['tokenizer_hash']}; use the run it was trained on"
            )
    soft = attach_soft_prompt(model, int(info["n_before"]), int(info["n_after"]), init="random")
    with torch.no_grad():
        soft.weight.copy_(table.to(soft.weight.dtype))
    return soft
