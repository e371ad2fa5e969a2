"""`lmforge world`: build the built-in synthetic world (text, tasks, dialogues, preferences)."""

from __future__ import annotations

import argparse

from lmforge.config import add_config_args, build_config, overrides_from_args

VERB = "world"


def register(subparsers) -> None:
    from lmforge.data.world.config import WorldConfig

    p = subparsers.add_parser(
        VERB,
        help="build the synthetic world: pretraining text, instruction tasks, dialogues, "
        "preferences, classification sets",
        description="Build lmforge's built-in synthetic world into --out. The same --seed gives "
        "byte-identical files. See docs/world.md.",
    )
    p.add_argument("--config", metavar="YAML", help="YAML file with WorldConfig fields")
    add_config_args(p, WorldConfig)
    p.set_defaults(func=run)


def _summary(manifest: dict, out: str, seconds: float) -> str:
    files = manifest["files"]
    chars = manifest["pretrain_chars"]
    lines = [
        f"world: seed {manifest['seed']}, size {manifest['size']}, built in {seconds:.1f} s -> {out}",
        f"  pretrain text: {chars['train']:,} chars train, {chars['val']:,} chars val",
        f"  held-out task families: {', '.join(manifest.get('heldout_tasks', [])) or 'none'}",
    ]
    for rel, info in files.items():
        if rel.endswith(".jsonl"):
            lines.append(f"  {rel:42s} {info['records']:>8,} records  {info['bytes']:>12,} bytes")
    total = sum(info["bytes"] for info in files.values())
    lines.append(f"  {len(files)} files, {total:,} bytes")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lmforge.data.world.build import timed_build
    from lmforge.data.world.config import WorldConfig

    cfg = build_config(WorldConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    manifest, seconds = timed_build(cfg)
    print(_summary(manifest, cfg.out, seconds))
    return 0
