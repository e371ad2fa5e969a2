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


@dataclass
class Mixture:
    weights: dict[str, float] = field_(default_factory=dict, help="task weights")
    source: str = field_("", help="parent run", aliases=("--from",))


def _parse_mixture(argv):
    p = argparse.ArgumentParser()
    add_config_args(p, Mixture)
    return build_config(Mixture, overrides=overrides_from_args(p.parse_args(argv)))


def test_dict_field_from_flags_and_yaml(tmp_path):
    assert _parse_mixture(["--weights", "arithmetic=2", "facts=0.5"]).weights == {
        "arithmetic": 2.0,
        "facts": 0.5,
    }
    assert _parse_mixture(["--weights", "a=1,b=3"]).weights == {"a": 1.0, "b": 3.0}
    y = tmp_path / "m.yaml"
    y.write_text("weights:\n  arithmetic: 2\n  facts: '0.25'\n", encoding="utf-8")
    assert build_config(Mixture, yaml_path=y).weights == {"arithmetic": 2.0, "facts": 0.25}


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--weights", "arithmetic"], "KEY=VALUE"),
        (["--weights", "arithmetic=lots"], "weights.arithmetic: expected float"),
    ],
)
def test_dict_field_rejects_bad_items(argv, needle):
    with pytest.raises(ConfigError, match=needle):
        _parse_mixture(argv)


def test_dict_field_rejects_a_plain_string_in_yaml(tmp_path):
    y = tmp_path / "m.yaml"
    y.write_text("weights: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="weights: expected a mapping"):
        build_config(Mixture, yaml_path=y)


def test_field_alias_flag():
    assert _parse_mixture(["--from", "runs/base"]).source == "runs/base"
    assert _parse_mixture(["--source", "runs/x"]).source == "runs/x"
