"""`lmforge export peft`: a LoRA or prompt-tune run as a Hugging Face base model + PEFT adapter.

``export_peft(run, out)`` writes

* ``out/base``: the frozen base model as a transformers folder (``export/hf.py``;
  LoRA runs: the *unmerged* base weights, without the adapters);
* ``out/adapter``: ``adapter_config.json`` + ``adapter_model.safetensors`` in
  PEFT's format, so that::

      base = AutoModelForCausalLM.from_pretrained("out/base")
      model = PeftModel.from_pretrained(base, "out/adapter")

  computes what lmforge's model computes (tests: logits within 1e-4).

LoRA: tensor names are PEFT's saved names,
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` (LLaMA) or
``base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`` (GPT-2/GPT-1,
whose fused Conv1D layers take ``fan_in_fan_out``). lmforge's fused q|k|v and
gate|up matrices are separate modules in HF's LLaMA, so adapters on their
slices (``q``, ``v``, ``gate``, ...) map one to one; an adapter on a whole fused
matrix (``attn.qkv`` of a LLaMA) or on a slice of GPT-2's fused ``c_attn`` has
no PEFT counterpart and is refused, naming it.

Prompt tuning: PEFT puts every virtual token in front of the input, so only a
soft prompt with ``n_after == 0`` exports (``prompt_embeddings`` (n, d)); one with
tokens after the query is refused with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text, replace_folder
from .hf import DTYPES, export_hf, hf_model_type

ADAPTER_DIR, BASE_DIR = "adapter", "base"
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."  # what PeftModel's saved names start with

# (lmforge module suffix, slice) -> HF module suffix, per HF model type.
_LLAMA = {
    ("attn.qkv", "q"): "self_attn.q_proj",
    ("attn.qkv", "k"): "self_attn.k_proj",
    ("attn.qkv", "v"): "self_attn.v_proj",
    ("attn.proj", "all"): "self_attn.o_proj",
    ("mlp.fc", "gate"): "mlp.gate_proj",
    ("mlp.fc", "up"): "mlp.up_proj",
    ("mlp.proj", "all"): "mlp.down_proj",
}
_GPT = {
    ("attn.qkv", "all"): "attn.c_attn",
    ("attn.proj", "all"): "attn.c_proj",
    ("mlp.fc", "all"): "mlp.c_fc",
    ("mlp.proj", "all"): "mlp.c_proj",
}
_LAYERS = {"llama": "model.layers", "gpt2": "transformer.h", "openai-gpt": "transformer.h"}


def peft_lora_state(model: Any) -> tuple[dict[str, Any], list[str], bool]:
    """(PEFT tensor names -> tensors, HF module names adapted, fan_in_fan_out) of a LoRA model."""
    from ..models.lora import lora_modules

    kind = hf_model_type(model.config)
    table = _LLAMA if kind == "llama" else _GPT
    tensors: dict[str, Any] = {}
    modules: list[str] = []
    for name, mod in lora_modules(model).items():
        for slice_name, _, _ in mod.slices:
            hf = _hf_module(name, slice_name, kind, table)
            modules.append(hf)
            a, b = mod.lora_A[slice_name].detach(), mod.lora_B[slice_name].detach()
            tensors[f"{PREFIX}{hf}.lora_A.weight"] = a
            tensors[f"{PREFIX}{hf}.lora_B.weight"] = b
    return tensors, modules, kind != "llama"


def _hf_module(name: str, slice_name: str, kind: str, table: dict) -> str:
    """The HF module an lmforge adapter (module `name`, slice) lives on; refuses what has none."""
    if name == "lm_head" and slice_name == "all":
        return "lm_head"
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blocks" and parts[1].isdigit():
        key = (".".join(parts[2:]), slice_name)
        if key in table:
            return f"{_LAYERS[kind]}.{parts[1]}.{table[key]}"
    what = name if slice_name == "all" else f"the {slice_name} slice of {name}"
    fused = {"llama": "LLaMA keeps q/k/v and gate/up as separate modules: target q,k,v or "
             "gate,up instead", "gpt2": "GPT-2's c_attn is one fused module in transformers too: "
             "target attn.qkv whole"}  # fmt: skip
    hint = fused.get(kind, fused["gpt2"])
    raise LmforgeError(f"a LoRA adapter on {what} has no PEFT equivalent for {kind}; {hint}")


def _target_modules(modules: list[str], n_layer: int) -> list[str]:
    """PEFT's target_modules: short suffixes when every layer is adapted alike, else full names."""
    by_suffix: dict[str, set[str]] = {}
    for m in modules:
        parts = m.split(".")
        if m == "lm_head":
            by_suffix.setdefault("lm_head", set()).add("")
            continue
        by_suffix.setdefault(".".join(parts[3:]), set()).add(parts[2])
    if all(s == "lm_head" or len(layers) == n_layer for s, layers in by_suffix.items()):
        # PEFT matches a name at a dot: "q_proj" where the leaf is unique, else a longer
        # suffix ("attn.c_proj" is not GPT-2's mlp.c_proj).
        leaves = [s.rsplit(".", 1)[-1] for s in by_suffix]
        return sorted(leaf if leaves.count(leaf) == 1 else s for s, leaf in zip(by_suffix, leaves))
    return sorted(modules)


def lora_adapter_config(model: Any, modules: list[str], fan_in_fan_out: bool, base: str) -> dict:
    """adapter_config.json of a LoRA model (PEFT's LoraConfig fields that matter)."""
    from ..models.lora import lora_config_of

    cfg = lora_config_of(model)
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": _target_modules(modules, model.config.n_layer),
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
        "revision": None,
    }


def prompt_adapter_config(model: Any, n: int, base: str) -> dict:
    """adapter_config.json of a soft prompt (PEFT prompt tuning, n virtual tokens)."""
    cfg = model.config
    return {
        "peft_type": "PROMPT_TUNING",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "num_virtual_tokens": n,
        "token_dim": cfg.d_model,
        "num_transformer_submodules": 1,
        "num_attention_heads": cfg.n_head,
        "num_layers": cfg.n_layer,
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "tokenizer_name_or_path": None,
        "inference_mode": True,
        "revision": None,
    }


def _check_out(out: Path, force: bool, inputs=()) -> None:
    from ..outputs import check_out

    check_out(
        out,
        force=force,
        made_here=lambda p: (p / ADAPTER_DIR / ADAPTER_CONFIG).is_file(),
        what="PEFT export (base/ and adapter/)",
        inputs=inputs,
    )


def export_peft(
    run: str | Path,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    dtype: str = "float32",
    force: bool = False,
) -> Path:
    """`lmforge export peft`: a LoRA run or a prompt-tune run as out/base + out/adapter."""
    import torch
    from safetensors.torch import save_file

    from ..models.gpt import GPT
    from ..models.lora import has_lora, unload_lora
    from ..models.soft_prompt import detach_soft_prompt, soft_prompt_of
    from ..runs import load_run

    if dtype not in DTYPES:
        raise LmforgeError(f"dtype: got {dtype!r}; allowed: {', '.join(DTYPES)}")
    out = Path(out)
    _check_out(out, force, [("run", run)])  # before anything heavy is read
    opened = load_run(run, checkpoint=checkpoint, need="transformer-decoder", lora="keep")
    model, tok = opened.model, opened.tokenizer
    if not isinstance(model, GPT):
        raise LmforgeError(f"{opened.checkpoint.model_file}: PEFT export covers GPT and LLaMA runs")
    hf_model_type(model.config)  # a model transformers has no class for: refused here
    soft = soft_prompt_of(model)
    if not has_lora(model) and soft is None:
        raise LmforgeError(
            f"{opened.path}: has neither LoRA adapters nor a soft prompt (train with --lora, or "
            "`lmforge prompt-tune`); a full model exports with `lmforge export hf`"
        )
    if soft is not None and soft.n_after:
        raise LmforgeError(
            f"{opened.path}: its soft prompt has {soft.n_after} tokens after the input; PEFT's "
            "prompt tuning puts every virtual token in front, so only --n-after 0 exports"
        )
    target = getattr(torch, dtype)
    final_base = str((out / BASE_DIR).resolve())
    if has_lora(model):
        tensors, modules, fan = peft_lora_state(model)  # refuses unmappable adapters first
        config = lora_adapter_config(model, modules, fan, final_base)
        unload_lora(model, merge=False)
    else:
        tensors = {"prompt_embeddings": soft.weight.detach()}
        config = prompt_adapter_config(model, soft.n_virtual, final_base)
        detach_soft_prompt(model)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        export_hf(model, tok, tmp / BASE_DIR, dtype=dtype)
        adapter = tmp / ADAPTER_DIR
        adapter.mkdir()
        atomic_write_text(adapter / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
        weights = {k: v.to("cpu", target).contiguous() for k, v in tensors.items()}
        save_file(weights, str(adapter / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
