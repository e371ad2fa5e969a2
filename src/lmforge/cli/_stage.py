"""What every training-stage verb shares: `--config`, `--resume`, and the config it resolves to."""

from __future__ import annotations

import argparse
from typing import Any


def add_stage_args(parser: argparse.ArgumentParser, cls: type, name: str) -> None:
    """`--config YAML`, `--resume` and a flag per field of the stage config `cls`."""
    from ..config import add_config_args

    parser.add_argument("--config", metavar="YAML", help=f"{name} YAML (flags override it)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN/latest exactly (config from RUN/config.yaml unless --config; "
        "flags such as --max-steps still override)",
    )
    add_config_args(parser, cls)


def stage_config(args: argparse.Namespace, cls: type) -> Any:
    """The stage config: --config, or on --resume the run's own config.yaml, then the flags."""
    from ..common import ConfigError
    from ..config import build_config, overrides_from_args, read_yaml
    from ..runs import RunLayout
    from ..stages.base import import_not_resumable

    overrides = overrides_from_args(args)
    yaml_path = args.config
    if args.resume and not yaml_path:
        out = overrides.get("out")
        if not out:
            raise ConfigError("out", "--resume needs --out RUN, the run folder to continue")
        saved = RunLayout(out).config
        if saved.is_file():
            if "imported_from" in read_yaml(saved):  # not a stage config: say why first
                raise import_not_resumable(out)
            yaml_path = saved
    return build_config(cls, yaml_path=yaml_path, overrides=overrides)
