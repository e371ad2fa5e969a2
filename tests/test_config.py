"""Config machinery: YAML round trip, flag overrides, validation naming the field."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from lmforge.common import ConfigError
from lmforge.config import (
    add_config_args,
    build_config,
    field_,
    load_config,
    overrides_from_args,
    save_config,
)


@dataclass
class Inner:
    n_layer: int = field_(2, help="layers", min=1)


@dataclass
class Demo:
    kind: str = field_("bpe", help="kind", choices=["bpe", "char"])
    lr: float = field_(1e-3, min=0.0)
    compile: bool = field_(False)
    inputs: list[str] = field_(default_factory=list)
    note: str | None = field_(None)
    inner: Inner = field(default_factory=Inner)

    def validate(self) -> None:
        if self.kind == "char" and self.lr > 1:
            raise ConfigError("lr", "too large for char")


def parse(argv):
    p = argparse.ArgumentParser()
    add_config_args(p, Demo)
    return overrides_from_args(p.parse_args(argv))


def test_defaults_and_flag_overrides():
    cfg = build_config(Demo, overrides=parse(["--lr", "3e-4", "--compile", "--inner.n-layer", "4"]))
    assert cfg.lr == pytest.approx(3e-4) and cfg.compile is True and cfg.inner.n_layer == 4
    assert cfg.kind == "bpe"  # untouched flags keep defaults


def test_bad_choice_names_field_and_allowed_values():
    with pytest.raises(ConfigError, match=r"kind: got 'wordpiece'; allowed: bpe, char"):
        build_config(Demo, overrides=parse(["--kind", "wordpiece"]))


def test_bounds_and_types_name_the_field():
    with pytest.raises(ConfigError, match=r"inner.n_layer: must be >= 1"):
        build_config(Demo, overrides={"inner.n_layer": 0})
    with pytest.raises(ConfigError, match=r"lr: expected float"):
        build_config(Demo, overrides={"lr": "fast"})
    with pytest.raises(ConfigError, match=r"nope: unknown field"):
        build_config(Demo, overrides={"nope": 1})


def test_cross_field_validate_runs():
    with pytest.raises(ConfigError, match="lr: too large"):
        build_config(Demo, overrides={"kind": "char", "lr": 2})


def test_yaml_round_trip_and_flags_beat_yaml(tmp_path):
    cfg = build_config(
        Demo, overrides={"inputs": ["a.txt", "b.txt"], "note": "x", "inner.n_layer": 3}
    )
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    assert load_config(Demo, path) == cfg
    again = build_config(Demo, yaml_path=path, overrides={"lr": 0.5})
    assert again.inner.n_layer == 3 and again.lr == 0.5 and again.inputs == ["a.txt", "b.txt"]
