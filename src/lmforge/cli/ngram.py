"""`lmforge ngram train|eval|suggest|sample|export|info|t9|correct|t9-eval|correct-eval`:
statistical n-gram language models and what a phone keyboard does with them."""

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
    _register_keyboard(sub)


def _register_keyboard(sub: argparse._SubParsersAction) -> None:
    """t9, correct and their evaluations (docs/ngram.md, "Keyboards")."""
    from ..config import add_config_args
    from ..ngram.t9 import T9Config
    from ..ngram.typo_noise import NoiseConfig
    from ..ngram.typos import CorrectConfig

    t9 = sub.add_parser(
        "t9",
        help="T9: phone-keypad digit sequences to words; phrases decoded with the model",
        description="Each line is key sequences (digits 2-9) separated by spaces. One sequence "
        "lists its words by unigram probability; a phrase is decoded by beam search with the "
        "model (log10 p of the phrase as a sentence). Interactive on a terminal.",
    )
    t9.add_argument("--model", required=True, metavar="MODEL", help="model file (.npz or ARPA)")
    t9.add_argument("keys", nargs="*", metavar="KEYS", help="lines of key sequences (else stdin)")
    add_config_args(t9, T9Config)
    t9.set_defaults(func=run_t9)

    cr = sub.add_parser(
        "correct",
        help="typo correction: a noisy channel (edit model x the n-gram model in context)",
        description="Prints each line with its typos corrected. Candidates within Damerau "
        "distance --max-edits, an error model (per-edit costs, --keyboard adjacency) and the "
        "model's probability of the whole sentence; a word in the vocabulary is changed only "
        "on strong evidence.",
    )
    _model_arg(cr)
    cr.add_argument("text", nargs="*", metavar="TEXT", help="lines of text (else stdin)")
    add_config_args(cr, CorrectConfig)
    cr.set_defaults(func=run_correct)

    for name, what in (("t9-eval", "T9 top-1 word accuracy"), ("correct-eval", "typo correction")):
        ev = sub.add_parser(
            name,
            help=f"measure {what} on held-out sentences of corpora (the docs' table)",
            description="Trains an MKN model on the first 90% of each corpus's lines and "
            "evaluates on the last 10% (--split dev: 80% / the next 10%); prints a Markdown "
            "table.",
        )
        ev.add_argument(
            "--corpus",
            nargs="+",
            required=True,
            metavar="TXT",
            help="text files, one sentence a line",
        )
        ev.add_argument("--order", type=int, default=3, help="n-gram order (default: 3)")
        ev.add_argument(
            "--split", choices=("test", "dev"), default="test", help="which held-out lines"
        )
        ev.add_argument(
            "--max-sentences", type=int, default=0, metavar="N", help="evaluate on the first N only"
        )
        if name == "t9-eval":
            ev.add_argument(
                "--layout", choices=("auto", "en", "ru"), default="auto",
                help="keypad (auto: the one that types most of the corpus)",
            )  # fmt: skip
            ev.add_argument("--beam", type=int, default=16, help="beam width (default: 16)")
            ev.set_defaults(func=run_t9_eval)
        else:
            add_config_args(ev, NoiseConfig)
            ev.set_defaults(func=run_correct_eval)


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


def run_t9(args: argparse.Namespace) -> int:
    from ..common import LmforgeError
    from ..config import build_config, overrides_from_args
    from ..ngram.files import load_model
    from ..ngram.repl import run_t9 as loop
    from ..ngram.t9 import T9Config, T9Index

    cfg = build_config(T9Config, overrides=overrides_from_args(args))
    model = load_model(args.model)
    index = T9Index(model, cfg.layout)
    if len(index) == 0:
        other = next(k for k in ("en", "ru") if k != cfg.layout)
        raise LmforgeError(
            f"{args.model}: no word of the model's vocabulary can be typed with the "
            f"{cfg.layout} keypad; try --layout {other}"
        )
    return loop(index, args.keys, cfg.top, cfg.beam, cfg.line_mode)


def run_correct(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..ngram.files import load_model
    from ..ngram.repl import run_correct as loop
    from ..ngram.text import make_tokenizer
    from ..ngram.typos import CorrectConfig, Corrector

    cfg = build_config(CorrectConfig, overrides=overrides_from_args(args))
    model = load_model(args.model)
    tokenize = make_tokenizer(args.tokenizer or model.tokenizer)
    return loop(Corrector(model, cfg), tokenize, args.text, top=cfg.top)


def _check_eval_args(args: argparse.Namespace) -> None:
    from ..common import LmforgeError

    if not 1 <= args.order <= 6:
        raise LmforgeError(f"--order: must be 1..6, got {args.order}")
    if args.max_sentences < 0:
        raise LmforgeError(f"--max-sentences: must be >= 0, got {args.max_sentences}")
    if getattr(args, "beam", 1) < 1:
        raise LmforgeError(f"--beam: must be >= 1, got {args.beam}")


def run_t9_eval(args: argparse.Namespace) -> int:
    from ..ngram.correct_eval import evaluate_t9, t9_table

    _check_eval_args(args)
    results = [
        evaluate_t9(c, args.layout, args.order, args.beam, args.split, args.max_sentences)
        for c in args.corpus
    ]
    for line in t9_table(results):
        print(line)
    return 0


def run_correct_eval(args: argparse.Namespace) -> int:
    from ..config import build_config, overrides_from_args
    from ..ngram.correct_eval import correct_notes, correct_table, evaluate_correction
    from ..ngram.typo_noise import NoiseConfig

    _check_eval_args(args)
    noise = build_config(NoiseConfig, overrides=overrides_from_args(args))
    results = [
        evaluate_correction(
            c, noise, order=args.order, split=args.split, max_sentences=args.max_sentences
        )
        for c in args.corpus
    ]
    for line in correct_table(results):
        print(line)
    print()
    for line in correct_notes(results):
        print(line)
    return 0
