"""`lmforge experiments`: the textbook's claims (C1-C10) as experiments with verdicts."""

from __future__ import annotations

import argparse

VERB = "experiments"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        VERB,
        help="reproduce the textbook's claims (C1-C10): tables, plots, verdicts",
        description="Each experiment measures one claim of the chapter and writes "
        "OUT/<id>-<name>/ (result.json, README.md, plots) with a verdict computed from its "
        "numbers; OUT/claims.md lists every experiment run into OUT. Experiments C4-C10 share "
        "one base (world, tokenizer, pretrained and SFT models) built once in OUT/base, or "
        "taken from a finished recipe folder with --base. See docs/claims.md.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="{list,run}")
    ls = sub.add_parser("list", help="the experiments, what they need, how long they take")
    ls.set_defaults(func=list_cmd)
    run = sub.add_parser("run", help="run experiments (ids, names, or all)")
    run.add_argument("names", nargs="+", metavar="NAME", help="C1..C10, a name, or all")
    run.add_argument("--out", required=True, help="the experiments' folder (created or reused)")
    run.add_argument(
        "--quick", action="store_true",
        help="tiny settings (seconds each): checks the experiments run, says nothing about "
        "the claims",
    )  # fmt: skip
    run.add_argument("--seed", type=int, default=0, help="the experiments' own seed (default 0)")
    run.add_argument(
        "--base", metavar="DIR",
        help="a finished recipe folder (e.g. `make demo`'s) to use as the shared base",
    )  # fmt: skip
    run.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    run.set_defaults(func=run_cmd)


def list_cmd(args: argparse.Namespace) -> int:
    from ..experiments.claims import BASE_MINUTES, CLAIMS

    print(f"{'id':4s} {'name':22s} {'needs':9s} {'min':>4s}  claim")
    for s in CLAIMS:
        needs = s.needs or "-"
        print(f"{s.id:4s} {s.slug:22s} {needs:9s} {s.minutes:4.1f}  {s.claim}")
    total = BASE_MINUTES + sum(s.minutes for s in CLAIMS)
    print(
        f"\nC4-C10 share one base (world to SFT), built once: {BASE_MINUTES:.0f} min; all: "
        f"about {total:.0f} min on 2 CPU cores"
    )
    print("\nrun one: lmforge experiments run C1 --out exp    all: lmforge experiments run all "
          "--out exp    tiny: --quick")  # fmt: skip
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    from ..experiments.claims_run import run_claims

    if args.threads is not None and args.threads < 1:
        from ..common import LmforgeError

        raise LmforgeError(f"--threads {args.threads}: must be at least 1")
    return run_claims(
        args.names, args.out, quick=args.quick, seed=args.seed, base=args.base,
        threads=args.threads,
    )  # fmt: skip
