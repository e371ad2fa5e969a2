"""LoRA: low-rank adapters swapped into a frozen model by module surgery.

``apply_lora(model, LoraConfig(r=8, alpha=16, targets=("q", "v")))`` replaces
each targeted ``nn.Linear`` by a `LoraLinear` that keeps the very same frozen
``weight``/``bias`` parameters (so their state-dict names do not change) and
adds, per adapted slice of its output, ``lora_A.<slice>`` (r, in) and
``lora_B.<slice>`` (size, r). The forward is the base linear plus
``(dropout(x) @ A^T) @ B^T * alpha / r``, added in place into the base output:
no copy of the weight, one small extra matmul pair per module.

Targets (``LoraConfig.targets``):

* ``q``, ``k``, ``v``: slices of the fused ``attn.qkv`` projection of GPT/LLaMA,
  each with its own A and B (what PEFT does with LLaMA's separate q/k/v_proj);
* ``o`` (``attn.proj``), ``down`` (``mlp.proj``); ``gate`` and ``up``: the two
  halves of SwiGLU's fused ``mlp.fc`` (a GELU MLP has only ``up`` = ``mlp.fc``);
  Hugging Face's names ``q_proj`` ... ``down_proj`` are aliases; ``all-linear``
  is all of them;
* anything else is a module-path suffix, matched at dots (``qkv``, ``mlp.fc``,
  ``proj``, ``blocks.0.attn.qkv``, ``lm_head``): the whole module gets one A/B.

Init as PEFT: A kaiming-uniform (a = sqrt(5)), B zeros, so a fresh adapter
changes nothing. Everything else in the model is frozen (``requires_grad``
False): the optimizer sees only the adapters and autograd skips the base
weights' gradient products. ``merge_lora`` folds the update into the weights
(inference at base speed), ``unmerge_lora`` takes it out again (exact up to
fp32 rounding), ``unload_lora`` turns the modules back into plain
``nn.Linear`` (merged or not). ``parse_lora_spec("r=8,alpha=16,targets=q,v")``
is the CLI's ``--lora`` string.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import ConfigError

# Short target names -> the slice (or whole module) they adapt in a GPT block.
SLICE_TARGETS = ("q", "k", "v", "gate", "up")
WHOLE_TARGETS = {"o": "attn.proj", "down": "mlp.proj"}
HF_ALIASES = {
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
    "gate_proj": "gate", "up_proj": "up", "down_proj": "down",
}  # fmt: skip
ALL_LINEAR = ("all-linear", "all")
SPEC_KEYS = ("r", "alpha", "dropout", "targets")
WHOLE = "all"  # the slice name of an adapter over a module's whole output


@dataclass
class LoraConfig:
    """Rank, scaling, dropout and target modules of LoRA adapters (`--lora`)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q", "v")

    @property
    def scale(self) -> float:
        return self.alpha / self.r

    def validate(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ConfigError("lora", f"r must be a whole number >= 1, got {self.r!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ConfigError("lora", f"alpha must be a number > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("lora", f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.targets or any(not t for t in self.targets):
            raise ConfigError("lora", "targets: give at least one module name, e.g. targets=q,v")

    def to_json(self) -> str:
        """The canonical JSON of the config (checkpoint metadata; equal configs, equal text)."""
        d = asdict(self)
        d["targets"] = list(self.targets)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LoraConfig:
        d = json.loads(text)
        cfg = cls(
            r=int(d["r"]), alpha=float(d["alpha"]), dropout=float(d["dropout"]),
            targets=tuple(d["targets"]),
        )  # fmt: skip
        cfg.validate()
        return cfg

    def spec(self) -> str:
        """The `--lora` string of this config."""
        return f"r={self.r},alpha={self.alpha:g},dropout={self.dropout:g},targets=" + ",".join(
            self.targets
        )


def parse_lora_spec(spec: str) -> LoraConfig:
    """`r=8,alpha=16,dropout=0.05,targets=q,v` -> LoraConfig; bad keys/values: ConfigError.

    `targets` comes last: everything after ``targets=`` is its comma list. Keys
    left out keep their defaults (r 8, alpha 16, dropout 0, targets q,v).
    """
    text = spec.strip()
    if not text:
        raise ConfigError("lora", "empty spec; e.g. --lora r=8,alpha=16,targets=q,v")
    head, sep, tail = text.partition("targets=")
    if sep and head and not head.endswith(","):
        raise ConfigError("lora", f"{spec!r}: put targets= after a comma, last")
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in head.split(","))):
        key, eq, val = part.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError("lora", f"{part!r} is not key=value; keys: {', '.join(SPEC_KEYS)}")
        if key not in SPEC_KEYS:
            raise ConfigError("lora", f"unknown key {key!r}; keys: {', '.join(SPEC_KEYS)}")
        if key in values:
            raise ConfigError("lora", f"{key} given twice")
        values[key] = val.strip()
    cfg = LoraConfig()
    if "r" in values:
        if not values["r"].isdigit():
            raise ConfigError("lora", f"r={values['r']!r} is not a whole number")
        cfg.r = int(values["r"])
    for key in ("alpha", "dropout"):
        if key in values:
            try:
                setattr(cfg, key, float(values[key]))
            except ValueError:
                raise ConfigError("lora", f"{key}={values[key]!r} is not a number") from None
    if sep:
        targets = tuple(t.strip() for t in tail.split(","))
        if not any(targets) or any(not t or "=" in t for t in targets):
            raise ConfigError("lora", f"targets={tail!r}: give a comma list of module names, last")
        cfg.targets = targets
    cfg.validate()
    return cfg


class LoraLinear(nn.Module):
    """A frozen linear layer plus low-rank updates of slices of its output.

    ``slices`` is ``[(name, offset, size), ...]`` over the output features, sorted,
    not overlapping (one ``("all", 0, out_features)`` for a whole module). The
    base ``weight`` and ``bias`` are the original layer's parameters, unchanged.
    """

    def __init__(self, base: nn.Linear, slices: list[tuple[str, int, int]], cfg: LoraConfig,
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.r, self.scale = cfg.r, cfg.scale
        self.slices = sorted(slices, key=lambda s: s[1])
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None
        self.merged = False
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, _, size in self.slices:
            # PEFT's init: kaiming-uniform A, zero B (a new adapter changes nothing). Drawn
            # in fp32 on the CPU generator, then moved: the same numbers on every device.
            a = torch.empty(cfg.r, self.in_features)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
            self.lora_A[name] = nn.Parameter(a.to(device=dev, dtype=dt))
            self.lora_B[name] = nn.Parameter(torch.zeros(size, cfg.r, device=dev, dtype=dt))

    @property
    def whole(self) -> bool:
        return len(self.slices) == 1 and self.slices[0][2] == self.out_features

    def _a(self) -> torch.Tensor:
        """All slices' A stacked: (k*r, in)."""
        if len(self.slices) == 1:
            return self.lora_A[self.slices[0][0]]
        return torch.cat([self.lora_A[n] for n, _, _ in self.slices])

    def _b(self) -> torch.Tensor:
        """The slices' B placed block-diagonally into the output rows: (out, k*r).

        Rows outside every slice are zero; each slice's rows use only its own r
        columns. Tiny (out x k*r), built per call so that autograd sees the B's.
        """
        if self.whole:
            return self.lora_B[self.slices[0][0]]
        k, r = len(self.slices), self.r
        pieces, pos = [], 0
        ref = self.lora_B[self.slices[0][0]]
        for i, (name, off, size) in enumerate(self.slices):
            if off > pos:
                pieces.append(ref.new_zeros(off - pos, k * r))
            pieces.append(F.pad(self.lora_B[name], (i * r, (k - 1 - i) * r)))
            pos = off + size
        if pos < self.out_features:
            pieces.append(ref.new_zeros(self.out_features - pos, k * r))
        return torch.cat(pieces)

    def delta_weight(self) -> torch.Tensor:
        """scale * B @ A as a (out, in) matrix: what merging adds to the weight."""
        return (self._b() @ self._a()) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)  # (..., out)
        if self.merged:
            return out
        h = self.drop(x) if self.drop is not None else x
        if x.dim() != 2:
            h, flat = h.reshape(-1, self.in_features), out.view(-1, self.out_features)
        else:
            flat = out
        z = h @ self._a().t()  # (N, k*r)
        # In place into the base output (its backward needs x and W, not the output):
        # no (N, out) temporary. Under autocast z comes out in the compute dtype.
        flat.addmm_(z.to(flat.dtype), self._b().t().to(flat.dtype), alpha=self.scale)
        return out

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.weight.add_(self.delta_weight().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.weight.sub_(self.delta_weight().to(self.weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        names = ",".join(n for n, _, _ in self.slices)
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, slices={names}"


# ---------------------------------------------------------------------------
# Which modules (and slices) a config targets


def _inner(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)


def fused_slices(model: nn.Module) -> dict[str, dict[str, tuple[int, int]]]:
    """{module name: {short target: (offset, size)}} for the named slices of a GPT/LLaMA.

    Empty for other models (whose modules are targeted by path only).
    """
    from .gpt import GPT

    m = _inner(model)
    prefix = ""
    if not isinstance(m, GPT) and isinstance(getattr(m, "base", None), GPT):
        m, prefix = m.base, "base."
    if not isinstance(m, GPT):
        return {}
    cfg = m.config
    H, Hkv, hd, ff = cfg.n_head, cfg.kv_heads, cfg.head_dim, cfg.ffn_hidden
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for i in range(cfg.n_layer):
        b = f"{prefix}blocks.{i}."
        out[b + "attn.qkv"] = {"q": (0, H * hd), "k": (H * hd, Hkv * hd),
                               "v": ((H + Hkv) * hd, Hkv * hd)}  # fmt: skip
        out[b + "attn.proj"] = {"o": (0, cfg.d_model)}
        if cfg.mlp == "swiglu":  # gate | up fused (the export's split order)
            out[b + "mlp.fc"] = {"gate": (0, ff), "up": (ff, ff)}
        else:
            out[b + "mlp.fc"] = {"up": (0, ff)}
        out[b + "mlp.proj"] = {"down": (0, cfg.d_model)}
    return out


def resolve_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, list[str]]:
    """{module name: [slice names]} that `targets` adapt ("all" = the whole module).

    Raises ConfigError for a target that matches nothing, or a module that would
    be adapted both whole and by slices.
    """
    m = _inner(model)
    linears = {n: mod for n, mod in m.named_modules() if isinstance(mod, (nn.Linear, LoraLinear))}
    named = fused_slices(m)
    wanted: dict[str, set[str]] = {}
    expanded: list[str] = []
    for t in targets:
        t = HF_ALIASES.get(t, t)
        if t in ALL_LINEAR:
            if not named:
                raise ConfigError("lora", f"targets={t} needs a GPT/LLaMA model; name modules")
            expanded += ["q", "k", "v", "o", "up", "down"]
            if any("gate" in s for s in named.values()):
                expanded.append("gate")
        else:
            expanded.append(t)
    for t in expanded:
        hit = False
        if t in SLICE_TARGETS or t in WHOLE_TARGETS:
            for name, slices in named.items():
                if t in slices:
                    size = slices[t][1]
                    whole = size == linears[name].out_features and len(slices) == 1
                    wanted.setdefault(name, set()).add(WHOLE if whole else t)
                    hit = True
            if not hit:
                kinds = sorted({s for sl in named.values() for s in sl})
                raise ConfigError(
                    "lora",
                    f"target {t!r} is not in this model"
                    + (f" (it has {', '.join(kinds)})" if kinds else " (not a GPT/LLaMA)"),
                )
            continue
        for name in linears:
            if name == t or name.endswith("." + t):
                wanted.setdefault(name, set()).add(WHOLE)
                hit = True
        if not hit:
            known = "q, k, v, o, gate, up, down, all-linear, or a module path such as attn.qkv"
            raise ConfigError("lora", f"target {t!r} matches no linear layer; use {known}")
    out: dict[str, list[str]] = {}
    for name, parts in wanted.items():
        if WHOLE in parts and len(parts) > 1:
            raise ConfigError(
                "lora", f"{name} is targeted whole and by slices ({', '.join(sorted(parts))})"
            )
        out[name] = sorted(parts)
    return dict(sorted(out.items(), key=lambda kv: _natural(kv[0])))


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in name.split(".")]


# ---------------------------------------------------------------------------
# Surgery


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def apply_lora(model: nn.Module, cfg: LoraConfig, *, seed: int = 0) -> list[str]:
    """Swap LoRA adapters into `model` in place; returns the replaced module names.

    Every parameter of the model is frozen first; only the new A/B matrices
    train. A is initialised from a generator seeded with `seed` (every process
    of a torchrun group builds the same adapters). A model that already has
    adapters is refused (unload them first).
    """
    cfg.validate()
    m = _inner(model)
    if has_lora(m):
        raise ConfigError("lora", "the model already has LoRA adapters; unload them first")
    plan = resolve_targets(m, tuple(cfg.targets))
    named = fused_slices(m)
    for p in m.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(int(seed))
    for name, parts in plan.items():
        base = m.get_submodule(name)
        if parts == [WHOLE]:
            slices = [(WHOLE, 0, base.out_features)]
        else:
            slices = [(p, *named[name][p]) for p in parts]
        mod = LoraLinear(base, slices, cfg, gen)
        mod.train(base.training)  # a new module starts in training mode: follow the model
        _set_module(m, name, mod)
    m.lora_config = cfg
    return list(plan)


def lora_modules(model: nn.Module) -> dict[str, LoraLinear]:
    """{name: LoraLinear} of a model (empty without adapters)."""
    return {n: mod for n, mod in _inner(model).named_modules() if isinstance(mod, LoraLinear)}


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(mod, LoraLinear) for mod in _inner(model).modules())


def lora_config_of(model: nn.Module) -> LoraConfig | None:
    """The LoraConfig the model's adapters were made with (None without adapters)."""
    m = _inner(model)
    # A head model (reward / value) carries its base's adapters: the config is on the base.
    cfg = getattr(m, "lora_config", None) or getattr(getattr(m, "base", None), "lora_config", None)
    return cfg if has_lora(m) else None


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every A and B matrix, in module order (what the optimizer should see)."""
    out: list[nn.Parameter] = []
    for mod in lora_modules(model).values():
        for name, _, _ in mod.slices:
            out += [mod.lora_A[name], mod.lora_B[name]]
    return out


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (forward then costs what the base costs)."""
    for mod in lora_modules(model).values():
        mod.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take merged adapters back out of the base weights (exact up to fp32 rounding)."""
    for mod in lora_modules(model).values():
        mod.unmerge()
    return model


def unload_lora(model: nn.Module, *, merge: bool = True) -> nn.Module:
    """Replace every LoraLinear by a plain nn.Linear: merged weights, or (merge=False) the
    base weights without the adapters. The model is changed in place and returned."""
    m = _inner(model)
    for name, mod in lora_modules(m).items():
        if merge:
            mod.merge()
        else:
            mod.unmerge()
        lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None,
                        device="meta")  # fmt: skip
        lin.weight = mod.weight
        lin.bias = mod.bias
        _set_module(m, name, lin)
    if hasattr(m, "lora_config"):
        del m.lora_config
    return model


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters), shared tensors counted once."""
    seen = {id(p): p for p in _inner(model).parameters()}
    total = sum(p.numel() for p in seen.values())
    train = sum(p.numel() for p in seen.values() if p.requires_grad)
    return train, total
