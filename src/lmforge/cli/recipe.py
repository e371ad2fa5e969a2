"""`lmforge recipe`: the whole recipe (world to PPO, evaluations, report card) as one command."""

from __future__ import annotations

import argparse
from pathlib import Path

VERB = "recipe"
DEFAULT_RECIPE = "recipes/cpu-demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        VERB,
        help="run a whole recipe (world, tokenizer, shards, pretrain, SFT, reward model, RS, "
        "PPO, evaluations, report card), resumable",
        description="Run every stage of --recipe into a folder of its own under --out, skipping "
        "stages already complete: an interrupted recipe (even killed) resumes where it stopped "
        "when run again with the same command. Writes OUT/recipe_state.json, OUT/logs/ and the "
        "report card OUT/report.md and OUT/report.html. See docs/recipe.md.",
    )
    p.add_argument(
        "--recipe", default=DEFAULT_RECIPE, metavar="YAML",
        help=f"recipe file (default: {DEFAULT_RECIPE}; recipes/gpu-1x.yaml for one GPU)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="the recipe's folder (created, or resumed)")
    p.add_argument(
        "--force", action="store_true",
        help="start over: delete what an earlier recipe wrote in --out (only that)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    p.set_defaults(func=run)


def _recipe_path(given: str) -> str:
    """The default recipe is found beside the package too (an installed checkout)."""
    if given != DEFAULT_RECIPE or Path(given).is_file():
        return given
    import lmforge

    repo = Path(lmforge.__file__).resolve().parents[2] / DEFAULT_RECIPE
    return str(repo) if repo.is_file() else given


def run(args: argparse.Namespace) -> int:
    from ..experiments.recipe import run_recipe

    return run_recipe(
        _recipe_path(args.recipe), args.out, force=args.force, dry_run=args.dry_run,
        only=args.only, until=args.until,
    )  # fmt: skip
