"""`lmforge ngram train|eval|suggest|sample|export|info`: statistical n-gram language models."""

from __future__ import annotations

import argparse

VERB = "ngram"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..config import add_config_args
    from ..ngram.config import NgramConfig, SampleConfig, SuggestConfig

    parser = subparsers.add_parser(
        VERB,
        help="n-gram language models: train, evaluate, suggest words, sample, export ARPA",
        description="Count-based language models (orders 1-6): MLE, add-k, stupid backoff, "
        "Kneser-Ney and modified Kneser-Ney as KenLM's lmplz; ARPA in and out.",
    )
    parser.set_defaults(help_parser=parser)
    sub = parser.add_subparsers(dest="ngram_verb", metavar="SUBVERB")

    train = sub.add_parser(
        "train",
        help="count n-grams in text files and estimate a model",
        description="Train on plain text, one sentence per line. --out M.npz writes an lmforge "
        "model, --out M.arpa an ARPA file.",
    )
    train.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="text files, folders of .txt files or globs",
    )
    train.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    train.add_argument("--force", action="store_true", help="replace the file at --out")
    train.add_argument("--config", metavar="YAML", help="NgramConfig YAML (flags override it)")
    add_config_args(train, NgramConfig)
    train.set_defaults(func=run_train)

    ev = sub.add_parser(
        "eval",
        help="log-probability and perplexity of text files",
        description="Perplexity counted as KenLM's query: every word and </s>, OOVs as <unk>.",
    )
    _model_arg(ev)
    ev.add_argument("--input", nargs="+", required=True, metavar="PATH", help="text files to score")
    ev.add_argument(
        "--verbose",
        action="store_true",
        help="per-token breakdown (p, log10 p, order used) and why log space",
    )
    ev.set_defaults(func=run_eval)

    sg = sub.add_parser(
        "suggest",
        help="next-word suggestions and word completion as you type",
        description="Interactive on a terminal; from a pipe, each line is typed text: ending "
        "in a space suggests next words, otherwise completes the last word.",
    )
    _model_arg(sg)
    add_config_args(sg, SuggestConfig)
    sg.set_defaults(func=run_suggest)

    sm = sub.add_parser("sample", help="sample sentences with temperature")
    _model_arg(sm)
    add_config_args(sm, SampleConfig)
    sm.set_defaults(func=run_sample)

    ex = sub.add_parser("export", help="write a model as ARPA (or as lmforge .npz)")
    ex.add_argument("--model", required=True, metavar="MODEL", help="model file (.npz or ARPA)")
    ex.add_argument("--format", choices=("arpa", "npz"), default="arpa", help="output format")
    ex.add_argument("--out", required=True, metavar="FILE", help="file to write (.gz: gzip ARPA)")
    ex.add_argument("--force", action="store_true", help="replace the file at --out")
    ex.set_defaults(func=run_export)

    info = sub.add_parser("info", help="counts per order, memory and discounts of a model")
    info.add_argument("--model", required=True, metavar="MODEL", help="model file (.npz or ARPA)")
    info.set_defaults(func=run_info)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="MODEL", help="model file (.npz or ARPA)")
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="SPEC",
        help="override the model's tokenizer: default, whitespace or a folder",
    )


def run_train(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..ngram.config import NgramConfig
    from ..ngram.files import save_model
    from ..ngram.train import train_ngram

    cfg = build_config(NgramConfig, yaml_path=args.config, overrides=overrides_from_args(args))
    _check_model_out(args, [("input", i) for i in args.input])
    model = train_ngram(cfg, args.input)
    path = save_model(model, args.out)
    t = model.meta["training"]
    counts = ", ".join(f"{n}-grams {c:,}" for n, c in enumerate(model.ngram_counts(), 1))
    print(f"wrote {path}: order {model.order} {model.smoothing}, vocabulary {model.vocab_size:,}")
    print(
        f"{t['sentences']:,} sentences, {t['words']:,} words; {counts}; {model.meta['seconds']:.2f} s"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..ngram.files import load_model
    from ..ngram.scoring import evaluate_files, token_breakdown, underflow_demo

    model = load_model(args.model)
    scores, sentences = evaluate_files(model, args.input, args.tokenizer)
    if args.verbose:
        for line in token_breakdown(model, scores, sentences):
            print(line)
        print()
    n_oov = int(scores.oov.sum())
    words = scores.n_tokens - scores.n_sentences
    print(f"sentences   {scores.n_sentences:,}")
    print(f"tokens      {scores.n_tokens:,} ({words:,} words + {scores.n_sentences:,} </s>)")
    print(f"OOV         {n_oov:,} ({n_oov / max(words, 1):.2%} of words, scored as <unk>)")
    print(f"log10 prob  {scores.total:,.4f}")
    print(
        f"perplexity  {scores.perplexity:,.4f} (including OOVs), "
        f"{scores.perplexity_without_oov:,.4f} (excluding OOVs)"
    )
    if model.smoothing == "stupid":
        print(
            "note        stupid backoff scores are not probabilities: this is not a true perplexity"
        )
    if args.verbose:
        print()
        for line in underflow_demo(scores):
            print(line)
    return 0


def run_suggest(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..ngram.config import SuggestConfig
    from ..ngram.files import load_model
    from ..ngram.repl import run_repl
    from ..ngram.text import make_tokenizer

    cfg = build_config(SuggestConfig, overrides=overrides_from_args(args))
    model = load_model(args.model)
    tokenize = make_tokenizer(args.tokenizer or model.tokenizer)
    return run_repl(model, tokenize, k=cfg.k, line_mode=cfg.line_mode)


def run_sample(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..ngram.config import SampleConfig
    from ..ngram.files import load_model
    from ..ngram.sample import sample_text
    from ..ngram.text import make_tokenizer

    cfg = build_config(SampleConfig, overrides=overrides_from_args(args))
    model = load_model(args.model)
    prefix = make_tokenizer(args.tokenizer or model.tokenizer)(cfg.prefix) if cfg.prefix else []
    for text in sample_text(
        model,
        cfg.n,
        cfg.seed,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        prefix=prefix,
        allow_unk=cfg.allow_unk,
    ):
        print(text)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..ngram.arpa import write_arpa
    from ..ngram.files import load_model

    _check_model_out(args, [("model", args.model)])
    model = load_model(args.model)
    path = write_arpa(model, args.out) if args.format == "arpa" else model.save(args.out)
    print(f"wrote {path} ({args.format}, {sum(model.ngram_counts()):,} n-grams)")
    return 0


def _check_model_out(args: argparse.Namespace, inputs: list) -> None:
    from ..outputs import check_out

    check_out(args.out, force=args.force, made_here=None, what="file", inputs=inputs, is_file=True)


def run_info(args: argparse.Namespace) -> int:
    from ..ngram.files import load_model
    from ..ngram.info import describe

    model = load_model(args.model)
    print(f"model       {args.model}")
    for line in describe(model):
        print(line)
    return 0
