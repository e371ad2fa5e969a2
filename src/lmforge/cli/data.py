"""`lmforge data prepare|info`: build token shards from corpus files; describe a data folder."""

from __future__ import annotations

import argparse
import json

VERB = "data"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..data.prepare_config import PrepareConfig

    parser = subparsers.add_parser(
        VERB,
        help="prepare token shards from text corpora; show a data folder",
        description="Corpus pipeline: read, normalise, deduplicate, tokenize and shard text.",
    )
    parser.set_defaults(help_parser=parser)
    sub = parser.add_subparsers(dest="data_verb", metavar="SUBVERB")

    prep = sub.add_parser(
        "prepare",
        help="tokenize corpora into train/val shards with meta.json",
        description="Read .txt/.jsonl/.parquet/.arrow files, folders, globs, saved Hugging Face "
        "datasets or hf:NAME; NFC-normalise, optionally strip HTML, drop exact duplicates, "
        "tokenize in parallel and write memory-mappable shards with a train/val split.",
    )
    prep.add_argument("--config", metavar="YAML", help="PrepareConfig YAML (flags override it)")
    add_config_args(prep, PrepareConfig)
    prep.set_defaults(func=run_prepare)

    info = sub.add_parser("info", help="show what a prepared data folder holds")
    info.add_argument("folder", help="a folder written by `lmforge data prepare`")
    info.add_argument("--json", action="store_true", help="print meta.json as is")
    info.set_defaults(func=run_info)


def run_prepare(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..data.prepare import PrepareConfig, prepare

    cfg = build_config(PrepareConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    meta = prepare(cfg)
    train, val = meta["splits"]["train"], meta["splits"]["val"]
    total = train["tokens"] + val["tokens"]
    rate = total / meta["seconds"] if meta["seconds"] else 0.0
    print(
        f"wrote {cfg.out}: train {train['tokens']:,} tokens ({train['documents']:,} docs), "
        f"val {val['tokens']:,} tokens ({val['documents']:,} docs), {meta['dtype']}"
    )
    print(
        f"{meta['documents_read']:,} documents read, {meta['duplicates_dropped']:,} duplicates "
        f"dropped, {meta['empty_dropped']:,} empty dropped; "
        f"{meta['seconds']:.2f} s ({rate:,.0f} tokens/s)"
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..data.shards import TokenShards, read_meta

    meta = read_meta(args.folder)
    for split, entry in meta["splits"].items():
        if entry.get("tokens"):
            TokenShards(args.folder, split)  # checks that every shard file is complete
    if args.json:
        print(json.dumps(meta, indent=2, ensure_ascii=False))
        return 0
    print(f"folder      {args.folder}")
    print(
        f"tokenizer   {meta.get('tokenizer_kind', '?')}, vocab {meta['vocab_size']:,}, "
        f"hash {meta['tokenizer_hash']}"
    )
    print(f"dtype       {meta['dtype']}")
    for split, e in meta["splits"].items():
        print(
            f"{split:<11} {e.get('tokens', 0):,} tokens, {e.get('documents', 0):,} documents, "
            f"{e.get('chars', 0):,} chars, {e.get('bytes', 0):,} bytes, "
            f"{len(e.get('shards', []))} shard(s)"
        )
    print(
        f"documents   {meta.get('documents_read', 0):,} read, "
        f"{meta.get('duplicates_dropped', 0):,} duplicates dropped, "
        f"{meta.get('empty_dropped', 0):,} empty dropped, split: {meta.get('split_rule', '?')}"
    )
    for s in meta.get("sources", []):
        print(f"source      {s['input']} ({s['kind']}, {s['documents']:,} documents)")
    return 0
