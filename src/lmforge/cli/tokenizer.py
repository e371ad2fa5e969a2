"""`lmforge tokenizer train|encode|decode|stats`: argument parsing only."""

from __future__ import annotations

import argparse
import sys

VERB = "tokenizer"


def register(subparsers) -> None:
    from lmforge.config import add_config_args
    from lmforge.tokenizers.train import TokenizerConfig

    parser = subparsers.add_parser(
        VERB,
        help="train a tokenizer (word, char, bpe, unigram); encode, decode, stats",
        description="Train tokenizers and inspect what they do to text.",
    )
    parser.set_defaults(help_parser=parser)
    sub = parser.add_subparsers(dest="tokenizer_verb", metavar="SUBVERB")

    train = sub.add_parser(
        "train",
        help="train a tokenizer on text files",
        description="Train a tokenizer and write tokenizer.json + lmforge.json to --out. "
        "Example: lmforge tokenizer train --kind bpe --vocab-size 4096 --input corpus.txt "
        "--out tok/",
    )
    train.add_argument(
        "--input",
        nargs="+",
        action="extend",
        required=True,
        metavar="PATH",
        help=".txt or .jsonl files (a `text` field), folders or globs",
    )
    train.add_argument("--out", required=True, help="folder to write the tokenizer to")
    train.add_argument("--force", action="store_true", help="replace the tokenizer in --out")
    train.add_argument("--config", help="YAML file with TokenizerConfig fields (flags override)")
    add_config_args(train, TokenizerConfig)
    train.set_defaults(func=_train)

    enc = sub.add_parser(
        "encode",
        help="print the ids (or tokens) of a text",
        description="Encode --text, the --input files, or standard input.",
    )
    _tokenizer_arg(enc)
    source = enc.add_mutually_exclusive_group()
    source.add_argument("--text", help="the text to encode")
    source.add_argument("--input", nargs="+", metavar="FILE", help="text files to encode")
    enc.add_argument("--tokens", action="store_true", help="print tokens (a JSON list), not ids")
    enc.add_argument("--bos", action="store_true", help="start with <|bos|>")
    enc.add_argument("--eos", action="store_true", help="end with <|eos|>")
    enc.add_argument(
        "--special",
        action="store_true",
        help="turn special-token strings in the text (<|user|>, <|end|>, ...) into their ids "
        "(default: they are plain text, so no text can forge a turn boundary)",
    )
    enc.set_defaults(func=_encode)

    dec = sub.add_parser(
        "decode",
        help="print the text of token ids",
        description="Decode ids given as arguments or on standard input (spaces or commas).",
    )
    _tokenizer_arg(dec)
    dec.add_argument("ids", nargs="*", help="token ids (default: read from standard input)")
    dec.add_argument("--keep-special", action="store_true", help="show special tokens too")
    dec.set_defaults(func=_decode)

    stats = sub.add_parser(
        "stats",
        help="vocab size, fertility, <|unk|> share, longest tokens, top merges",
        description="Encode each --input and report tokens per word and per character "
        "(fertility) and the share of <|unk|>, plus the vocabulary's longest tokens and "
        "top merges (bpe) or pieces (unigram).",
    )
    _tokenizer_arg(stats)
    stats.add_argument(
        "--input",
        nargs="+",
        action="extend",
        required=True,
        metavar="PATH",
        help=".txt or .jsonl files, folders or globs",
    )
    stats.add_argument("--top", type=int, default=10, help="how many tokens/merges to list")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=_stats)


def _tokenizer_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        "-t",
        required=True,
        metavar="DIR",
        help="tokenizer folder (or its tokenizer.json)",
    )


def _train(args: argparse.Namespace) -> int:
    from lmforge.config import build_config, overrides_from_args
    from lmforge.tokenizers.train import (
        TokenizerConfig,
        check_tokenizer_out,
        save_tokenizer_dir,
        train_tokenizer,
    )

    cfg = build_config(TokenizerConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    # Before training: a refused --out must not cost the training time.
    check_tokenizer_out(args.out, force=args.force, inputs=[("input", i) for i in args.input])
    tok = train_tokenizer(cfg, args.input)
    out = save_tokenizer_dir(tok, args.out, force=args.force)
    print(f"wrote {out}/ ({tok.kind}, vocab size {tok.vocab_size:,})")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import json

    from lmforge.common import read_text
    from lmforge.tokenizers import Tokenizer
    from lmforge.tokenizers.stats import display_token

    tok = Tokenizer.load(args.tokenizer)
    if args.text is not None:
        text = args.text
    elif args.input:
        text = "".join(read_text(f) for f in args.input)
    else:
        text = sys.stdin.read()
    ids = tok.encode(text, bos=args.bos, eos=args.eos, special=args.special)
    if args.tokens:
        tokens = [display_token(tok, tok.id_to_token(i) or "") for i in ids]
        print(json.dumps(tokens, ensure_ascii=False))
    else:
        print(" ".join(map(str, ids)))
    return 0


def _decode(args: argparse.Namespace) -> int:
    from lmforge.common import LmforgeError
    from lmforge.tokenizers import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    words = args.ids or sys.stdin.read().replace(",", " ").split()
    ids = []
    for w in words:
        try:
            i = int(w)
        except ValueError:
            raise LmforgeError(f"ids: {w!r} is not an integer token id") from None
        if not 0 <= i < tok.vocab_size:
            raise LmforgeError(f"ids: {i} is outside this tokenizer's 0..{tok.vocab_size - 1}")
        ids.append(i)
    print(tok.decode(ids, skip_special=not args.keep_special))
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from lmforge.tokenizers import Tokenizer
    from lmforge.tokenizers.stats import file_stats, format_stats, vocabulary_summary

    tok = Tokenizer.load(args.tokenizer)
    rows = file_stats(tok, args.input)
    summary = vocabulary_summary(tok, top=args.top)
    if args.json:
        print(json.dumps({**summary, "inputs": [r.to_dict() for r in rows]}, ensure_ascii=False))
    else:
        print(format_stats(summary, rows))
    return 0
