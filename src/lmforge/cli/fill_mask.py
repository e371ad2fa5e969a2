"""`lmforge fill-mask`: the most likely fillers of each [MASK] in a text, from a BERT run."""

from __future__ import annotations

import argparse

VERB = "fill-mask"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        VERB,
        help="fill [MASK] blanks in a text with a BERT (masked-LM) run",
        description="Print the top-k fillers of each [MASK] with their probabilities, using "
        "RUN/latest (or --checkpoint) and RUN/tokenizer. Each [MASK] stands for one token.",
        epilog="example: lmforge fill-mask --run runs/bert 'ann lives in [MASK].'",
    )
    parser.add_argument("text", help="text with one or more [MASK] blanks (quote it)")
    parser.add_argument(
        "--run", required=True, help="BERT run folder (latest, checkpoints/, tokenizer/)"
    )
    parser.add_argument(
        "--checkpoint", help="checkpoint folder name, e.g. step_1000 (default: latest)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="fillers shown per blank (default: 5)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..common import LmforgeError, pick_device
    from ..models.bert import MASK_LITERAL, fill_mask
    from ..runs import load_run

    if args.top_k < 1:
        raise LmforgeError(f"--top-k must be at least 1, got {args.top_k}")
    opened = load_run(
        args.run, checkpoint=args.checkpoint, device=pick_device(args.device), need="encoder"
    )
    model, tok = opened.model, opened.tokenizer
    ids, blanks = fill_mask(model, tok, args.text, top_k=args.top_k)
    mask_pos = [i for i, t in enumerate(ids) if t == tok.mask_id]
    best = list(ids)
    for pos, cands in zip(mask_pos, blanks):
        best[pos] = cands[0][0]
    for n, cands in enumerate(blanks, start=1):
        if len(blanks) > 1:
            print(f"{MASK_LITERAL} {n}:")
        shown = [_show(tok.decode([i])) for i, _ in cands]
        width = max(len(w) for w in shown)
        for w, (i, p) in zip(shown, cands):
            line = f"  {w:<{width}}  {p:.4f}"
            if len(blanks) == 1:
                filled = list(ids)
                filled[mask_pos[0]] = i
                line += f"  {_one_line(tok.decode(filled))}"
            print(line)
    if len(blanks) > 1:
        print(f"best: {_one_line(tok.decode(best))}")
    return 0


def _show(text: str) -> str:
    """A filler as printed: stripped, or quoted when it is only whitespace (e.g. a newline)."""
    return text.strip() or repr(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())
