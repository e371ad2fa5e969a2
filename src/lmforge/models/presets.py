"""Named model sizes: preset name -> (arch, config fields).

Names are ``<arch>-<size>`` for lmforge's own sizes (``llama-tiny``,
``gpt-cpu-small``), so ``get_preset("cpu-small", arch="llama")`` and
``get_preset("llama-cpu-small")`` are the same preset, and the published models
keep their usual names (``gpt2-xl``, ``gpt3-175b``, ``llama2-70b``).

Sizes follow the papers' tables (GPT-1: Radford et al. 2018; GPT-2: Radford et
al. 2019 with the released checkpoints' counts; GPT-3: Brown et al. 2020, Table
2.1; LLaMA: Touvron et al. 2023a, Table 2; LLaMA-2: Touvron et al. 2023b).
Where a paper's table is not self-consistent the released shape is used:
GPT-3 XL has 16 heads of 128 (the table's 24 heads do not divide d_model 2048)
and GPT-3 13B has d_model 5120 = 40 x 128 (the table says 5140). GPT-3's
alternating sparse attention layers are not modelled (dense attention).
Another arch adds its presets here with one line each.
"""

from __future__ import annotations

from typing import Any

from ..common import LmforgeError

_GPT2 = dict(vocab_size=50257, block_size=1024)
_GPT3 = dict(vocab_size=50257, block_size=2048)
_LLAMA1 = dict(vocab_size=32000, block_size=2048, norm_eps=1e-6)
_LLAMA2 = dict(vocab_size=32000, block_size=4096, norm_eps=1e-5)
_BERT = dict(vocab_size=30522, block_size=512)  # BERT's WordPiece vocabulary, 512 positions
# The CPU sizes of the benchmarks ("small": d128 L4 H4 ctx64; "14m": d384 L6 H6 ctx256)
# with an 8192-token vocabulary; `lmforge pretrain` sets vocab_size from the tokenizer.
_SMALL = dict(vocab_size=8192, block_size=64, n_layer=4, n_head=4, d_model=128)
_14M = dict(vocab_size=8192, block_size=256, n_layer=6, n_head=6, d_model=384)
_TINY = dict(vocab_size=512, block_size=64, n_layer=2, n_head=4, d_model=64)
# Small models share their embedding with the output layer: at 8k vocab it is half the weights.
_TIED = dict(tie_embeddings=True)

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # lmforge's own sizes: tests, CPU runs, benchmarks.
    "gpt-tiny": ("gpt", _TINY),
    "gpt-cpu-small": ("gpt", _SMALL),
    "gpt-cpu-14m": ("gpt", _14M),
    "llama-tiny": ("llama", {**_TINY, **_TIED}),
    "llama-cpu-small": ("llama", {**_SMALL, **_TIED}),
    "llama-cpu-14m": ("llama", {**_14M, **_TIED}),
    # Recurrent LMs: the cpu sizes have about the GPT cpu sizes' parameter counts at 8k vocab.
    "rnn-tiny": ("rnn", {**_TINY, "d_embed": 32}),
    "rnn-tiny-attn": ("rnn", {**_TINY, "d_embed": 32, "attention": True, "attn_window": 16}),
    "rnn-cpu-small": ("rnn", {**_SMALL, "n_layer": 2, "d_model": 256, "d_embed": 128}),
    "rnn-cpu-14m": ("rnn", {**_14M, "n_layer": 2, "d_model": 864, "d_embed": 384}),
    # BERT encoders (Devlin et al. 2018: base 110M, large 340M).
    "bert-tiny": ("bert", {**_TINY, "d_ff": 128, "dropout": 0.0}),
    "bert-cpu-small": ("bert", {**_SMALL, "d_ff": 512, "dropout": 0.0}),
    "bert-cpu-14m": ("bert", {**_14M, "d_ff": 1536, "dropout": 0.0}),
    "bert-base": ("bert", {**_BERT, "n_layer": 12, "n_head": 12, "d_model": 768, "d_ff": 3072}),
    "bert-large": ("bert", {**_BERT, "n_layer": 24, "n_head": 16, "d_model": 1024, "d_ff": 4096}),
    # GPT-1: post-norm, 512 context, 40478-token BPE.
    "gpt1": (
        "gpt",
        dict(vocab_size=40478, block_size=512, n_layer=12, n_head=12, d_model=768, prenorm=False),
    ),
    # GPT-2
    "gpt2": ("gpt", {**_GPT2, "n_layer": 12, "n_head": 12, "d_model": 768}),
    "gpt2-medium": ("gpt", {**_GPT2, "n_layer": 24, "n_head": 16, "d_model": 1024}),
    "gpt2-large": ("gpt", {**_GPT2, "n_layer": 36, "n_head": 20, "d_model": 1280}),
    "gpt2-xl": ("gpt", {**_GPT2, "n_layer": 48, "n_head": 25, "d_model": 1600}),
    # GPT-3
    "gpt3-125m": ("gpt", {**_GPT3, "n_layer": 12, "n_head": 12, "d_model": 768}),
    "gpt3-350m": ("gpt", {**_GPT3, "n_layer": 24, "n_head": 16, "d_model": 1024}),
    "gpt3-760m": ("gpt", {**_GPT3, "n_layer": 24, "n_head": 16, "d_model": 1536}),
    "gpt3-1.3b": ("gpt", {**_GPT3, "n_layer": 24, "n_head": 16, "d_model": 2048}),
    "gpt3-2.7b": ("gpt", {**_GPT3, "n_layer": 32, "n_head": 32, "d_model": 2560}),
    "gpt3-6.7b": ("gpt", {**_GPT3, "n_layer": 32, "n_head": 32, "d_model": 4096}),
    "gpt3-13b": ("gpt", {**_GPT3, "n_layer": 40, "n_head": 40, "d_model": 5120}),
    "gpt3-175b": ("gpt", {**_GPT3, "n_layer": 96, "n_head": 96, "d_model": 12288}),
    # LLaMA (2048 context, RMSNorm eps 1e-6)
    "llama-7b": ("llama", {**_LLAMA1, "n_layer": 32, "n_head": 32, "d_model": 4096}),
    "llama-13b": ("llama", {**_LLAMA1, "n_layer": 40, "n_head": 40, "d_model": 5120}),
    "llama-33b": ("llama", {**_LLAMA1, "n_layer": 60, "n_head": 52, "d_model": 6656}),
    "llama-65b": ("llama", {**_LLAMA1, "n_layer": 80, "n_head": 64, "d_model": 8192}),
    # LLaMA-2 (4096 context, eps 1e-5; 70B: grouped-query attention, wider SwiGLU)
    "llama2-7b": ("llama", {**_LLAMA2, "n_layer": 32, "n_head": 32, "d_model": 4096}),
    "llama2-13b": ("llama", {**_LLAMA2, "n_layer": 40, "n_head": 40, "d_model": 5120}),
    "llama2-70b": (
        "llama",
        {
            **_LLAMA2,
            "n_layer": 80,
            "n_head": 64,
            "n_kv_head": 8,
            "d_model": 8192,
            "ffn_multiplier": 1.3,
            "multiple_of": 4096,
        },
    ),
}

# Parameter counts as published (model cards / papers), for `lmforge model info` and tests.
# GPT-2's paper table (117M ... 1542M) undercounts; these are the released checkpoints'.
PUBLISHED_PARAMS: dict[str, float] = {
    "gpt1": 117e6,
    "gpt2": 124e6,
    "gpt2-medium": 355e6,
    "gpt2-large": 774e6,
    "gpt2-xl": 1.558e9,
    "gpt3-125m": 125e6,
    "gpt3-350m": 350e6,
    "gpt3-760m": 760e6,
    "gpt3-1.3b": 1.3e9,
    "gpt3-2.7b": 2.7e9,
    "gpt3-6.7b": 6.7e9,
    "gpt3-13b": 13e9,
    "gpt3-175b": 175e9,
    "llama-7b": 6.7e9,
    "llama-13b": 13.0e9,
    "llama-33b": 32.5e9,
    "llama-65b": 65.2e9,
    "llama2-7b": 6.7e9,
    "llama2-13b": 13.0e9,
    "llama2-70b": 70e9,
}


def preset_names(arch: str | None = None) -> list[str]:
    """All preset names (of one arch if given)."""
    return [n for n, (a, _) in PRESETS.items() if arch is None or a == arch]


def resolve_preset_name(name: str, arch: str | None = None) -> str:
    """The full preset name for `name` ("cpu-small" with arch "llama" -> "llama-cpu-small")."""
    if name in PRESETS:
        found = PRESETS[name][0]
        if arch is not None and found != arch:
            raise LmforgeError(
                f"preset {name!r} is a {found} model, not {arch}; "
                f"{arch} presets: {', '.join(preset_names(arch))}"
            )
        return name
    if arch is not None and f"{arch}-{name}" in PRESETS:
        return f"{arch}-{name}"
    known = ", ".join(preset_names(arch) if arch in {a for a, _ in PRESETS.values()} else PRESETS)
    scope = f"{arch} presets" if arch is not None else "known presets"
    raise LmforgeError(f"unknown preset {name!r}; {scope}: {known}")


def get_preset(name: str, arch: str | None = None) -> tuple[str, Any]:
    """(arch, config) of a preset; unknown names raise LmforgeError listing the known ones."""
    from .registry import model_config_from_dict

    full = resolve_preset_name(name, arch)
    found_arch, fields = PRESETS[full]
    return found_arch, model_config_from_dict(found_arch, dict(fields))
