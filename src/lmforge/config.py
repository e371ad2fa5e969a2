"""Typed dataclass configs: YAML in and out, CLI flags, validation at parse time.

Each stage defines its own ``@dataclass`` config beside its code (for example
``lmforge.train.config.TrainConfig``); this module is the machinery they share:

* ``field_(default, help=..., choices=..., min=..., max=...)`` declares a field with
  the metadata used for ``--help`` and validation;
* ``add_config_args(parser, Cls)`` adds one ``--flag`` per field (nested
  dataclasses become ``--parent.child``); flags default to "unset" so that they
  override a YAML file only when given;
* ``build_config(Cls, yaml_path, overrides)`` merges defaults ← YAML ← flags and
  validates, raising ``ConfigError`` that names the field and the allowed values;
* ``save_config`` / ``load_config`` round-trip the run folder's ``config.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from .common import ConfigError, LmforgeError, atomic_write_text

T = TypeVar("T")

_UNSET = object()


def field_(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    choices: typing.Sequence[Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    default_factory: Any = dataclasses.MISSING,
    aliases: typing.Sequence[str] = (),
) -> Any:
    """A dataclass field carrying help text, validation bounds and extra CLI flag names."""
    meta = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "min": min,
        "max": max,
        "aliases": tuple(aliases),
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert a YAML/CLI value to the field's type or raise ConfigError."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(name, "may not be empty")
    if isinstance(value, str) and optional and value.lower() in ("none", "null"):
        return None
    origin = typing.get_origin(base)
    try:
        if origin is dict:
            return _coerce_dict(name, base, value)
        if origin in (list, tuple):
            (inner,) = typing.get_args(base)[:1] or (str,)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v != ""]
            items = [_coerce(name, inner, v) for v in value]
            return items if origin is list else tuple(items)
        if origin is typing.Literal:
            allowed = typing.get_args(base)
            if value not in allowed:
                raise ConfigError(name, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")
            return value
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, str):
                # Accept 1e6 / 1_000_000 style integers.
                f = float(value.replace("_", ""))
                if not f.is_integer():
                    raise ValueError(value)
                return int(f)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is str:
            return str(value)
        if base is Path:
            return Path(value)
    except (TypeError, ValueError):
        tname = getattr(base, "__name__", str(base))
        raise ConfigError(name, f"expected {tname}, got {value!r}") from None
    return value


def _coerce_dict(name: str, tp: Any, value: Any) -> dict:
    """A mapping from YAML, or `k=v` items from the CLI (`--weights a=2 b=1` or `a=2,b=1`)."""
    key_t, val_t = (typing.get_args(tp) + (str, Any))[:2]
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        pairs = {}
        items = [p for v in value for p in (v.split(",") if isinstance(v, str) else [v])]
        for item in (i for i in items if not isinstance(i, str) or i.strip()):
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(name, f"expected KEY=VALUE items, got {item!r}")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ConfigError(name, f"expected a mapping (KEY=VALUE items), got {value!r}")
    out = {}
    for k, v in value.items():
        ck = _coerce(f"{name}.{k}", key_t, k)
        out[ck] = v if val_t is Any else _coerce(f"{name}.{k}", val_t, v)
    return out


def validate(cfg: Any, prefix: str = "") -> None:
    """Check choices and bounds of every field (recursively), then the config's own `validate()`."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            validate(value, prefix=name + ".")
            continue
        meta = f.metadata or {}
        choices = meta.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(name, f"got {value!r}; allowed: {', '.join(map(str, choices))}")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and value is not None and value < lo:
            raise ConfigError(name, f"must be >= {lo}, got {value!r}")
        if hi is not None and value is not None and value > hi:
            raise ConfigError(name, f"must be <= {hi}, got {value!r}")
    check = getattr(cfg, "validate", None)
    if callable(check):
        check()


def apply_overrides(cfg: T, overrides: dict[str, Any], prefix: str = "") -> T:
    """Return a copy of `cfg` with `overrides` ({field: value}, nested as dicts or 'a.b' keys) applied."""
    hints = _hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if "." in key:
            head, rest = key.split(".", 1)
            nested.setdefault(head, {})[rest] = value
        elif (
            isinstance(value, dict) and key in names and dataclasses.is_dataclass(getattr(cfg, key))
        ):
            nested.setdefault(key, {}).update(value)
        else:
            flat[key] = value
    changes: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(prefix + key, f"unknown field; known fields: {known}")
        changes[key] = _coerce(prefix + key, hints[key], value)
    for key, sub in nested.items():
        if key not in names or not dataclasses.is_dataclass(getattr(cfg, key)):
            raise ConfigError(prefix + key, "unknown section")
        changes[key] = apply_overrides(getattr(cfg, key), sub, prefix=prefix + key + ".")
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-YAML-able dict of a (nested) dataclass config."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write `cfg` as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise LmforgeError(f"{p}: no such config file")
    raw = p.read_bytes()
    if b"\x00" in raw[:4096]:
        raise LmforgeError(
            f"{p}: is binary or UTF-16, not a UTF-8 YAML file; save it as UTF-8 "
            f"(e.g. `iconv -f utf-16 -t utf-8 {p} > {p.stem}.utf8{p.suffix}`)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        from .common import not_utf8_error

        raise not_utf8_error(p, raw, e.start) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise LmforgeError(f"{p}: not valid YAML ({msg})") from None
    if not isinstance(data, dict):
        raise LmforgeError(f"{p}: expected a mapping of field: value at the top level")
    return data


def load_config(cls: type[T], path: str | Path) -> T:
    """Load a config saved by `save_config` (unknown keys are an error naming the field)."""
    cfg = apply_overrides(cls(), read_yaml(path))
    validate(cfg)
    return cfg


def build_config(
    cls: type[T],
    base: T | None = None,
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """defaults (or `base`, e.g. a preset) ← YAML file ← flag overrides, then validate."""
    cfg = base if base is not None else cls()
    if yaml_path:
        cfg = apply_overrides(cfg, read_yaml(yaml_path))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


# ---------------------------------------------------------------------------
# argparse integration


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    skip: typing.Collection[str] = (),
    base: Any = None,
) -> None:
    """Add one flag per config field; values stay unset unless given on the command line.

    `base` (an instance of `cls`) is the verb's own starting point, as passed to
    `build_config(base=...)`: `--help` then shows its values as the defaults.
    """
    hints = _hints(cls)
    group = parser.add_argument_group(
        f"{cls.__name__} fields" if not prefix else f"{prefix.rstrip('.')} fields"
    )
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        ftype, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(ftype):
            sub = getattr(base, f.name) if base is not None else None
            add_config_args(parser, ftype, prefix=prefix + f.name + ".", base=sub)
            continue
        meta = f.metadata or {}
        flag = "--" + (prefix + f.name).replace("_", "-")
        dest = "cfg__" + (prefix + f.name).replace(".", "__")
        if base is not None:
            default = getattr(base, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        helptext = meta.get("help", "")
        if "default" not in helptext:  # some fields explain their default themselves
            helptext = f"{helptext} (default: {default!r})" if helptext else f"default: {default!r}"
        kwargs: dict[str, Any] = {"dest": dest, "default": _UNSET, "help": helptext}
        origin = typing.get_origin(ftype)
        if ftype is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            # Values are kept as strings here and converted by _coerce, so that a
            # bad value fails with the field's name and the allowed values.
            kwargs["metavar"] = (
                "|".join(map(str, meta["choices"]))
                if meta.get("choices")
                else (getattr(ftype, "__name__", "VALUE").upper())
            )
            if origin in (list, tuple, dict):
                kwargs["nargs"] = "+"
            if origin is dict:
                kwargs["metavar"] = "KEY=VALUE"
        group.add_argument(flag, *meta.get("aliases", ()), **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Collect the config flags that were actually given, as {'a.b': value}."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("cfg__") and value is not _UNSET:
            out[key[len("cfg__") :].replace("__", ".")] = value
    return out
