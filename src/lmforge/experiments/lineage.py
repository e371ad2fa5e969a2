"""The lineage benchmark: n-grams, an LSTM, a GPT and a LLaMA on one corpus, one tokenizer.

`run_lineage(cfg)` builds, under ``cfg.out``::

    config.yaml          the LineageConfig
    tokenizer/, data/    one tokenizer and one train/val split shared by every model
    runs/<model>/        each neural model's pretrain run folder
    lineage.json         per model: parameters, training time, validation bits per
                         character, loss by window position, curve, speed, sample
    plots/val_curve.png, plots/loss_by_position.png, report.md

Every model predicts the same validation tokens with the same history: the
split is cut into non-overlapping windows of ``context`` tokens and each token
is predicted from the tokens before it in its window (n-grams use the last
n-1 of them). Bits per character = total nats / ln 2 / characters of the
validation text, so the figure would compare across tokenizers too.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..common import LmforgeError, check_text_file, print0, seed_everything
from ..config import save_config, to_dict
from .lineage_config import MODELS, LineageConfig

RESULT_FILE = "lineage.json"
CONFIG_FILE = "config.yaml"


def run_lineage(cfg: LineageConfig) -> dict[str, Any]:
    """Run the comparison as `cfg` says; returns (and writes) the lineage.json payload."""
    import torch

    corpus = check_text_file(cfg.corpus)
    out = Path(cfg.out)
    _claim_out(out, cfg.force, corpus)
    save_config(cfg, out / CONFIG_FILE)
    torch.set_num_threads(cfg.threads)
    tok, data = _prepare(cfg, corpus, out)
    from ..data.shards import TokenShards

    train_ids = _all_ids(TokenShards(data, "train"))
    val_shards = TokenShards(data, "val")
    val_ids = _all_ids(val_shards)
    val_meta = val_shards.meta["splits"]["val"]
    if len(val_ids) < 2:
        raise LmforgeError(
            f"{corpus}: the validation split holds {len(val_ids)} tokens; raise --val-fraction "
            "or use a longer corpus"
        )
    start = tok.eos_id  # every sample starts where a document starts
    models = []
    for name in cfg.models:
        kind, spec = MODELS[name]
        print0(f"lineage: {name} ...")
        if kind == "ngram":
            row = _ngram(cfg, name, int(spec), train_ids, val_ids, tok, start)
        else:
            row = _neural(cfg, name, str(spec), data, out, val_ids, tok, start)
        row.update(_summary(row.pop("losses"), row.pop("positions"), val_meta, cfg.context))
        print0(
            f"lineage: {name}: {row['val_bpc']:.3f} bits/char, {row['params']:,} "
            f"{row['params_unit']}, trained {row['train_s']:.1f} s, "
            f"{row['gen_tok_per_s']:,.0f} tokens/s"
        )
        models.append(row)
    result = {
        "corpus": str(corpus),
        "config": to_dict(cfg),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size},
        "split": {
            "train_tokens": int(len(train_ids)),
            "val_tokens": int(len(val_ids)),
            "val_predicted": int(len(val_ids) - 1),
            "val_chars": int(val_meta["chars"]),
            "val_bytes": int(val_meta["bytes"]),
        },
        "models": models,
    }
    from .lineage_report import write_outputs

    write_outputs(result, out)
    return result


def _claim_out(out: Path, force: bool, corpus: Path) -> None:
    """Use `out` if empty; replace an earlier lineage run only with `force` (lmforge.outputs)."""
    from ..outputs import check_out

    check_out(
        out, force=force, made_here=_is_lineage_run, what="lineage run", inputs=[("corpus", corpus)]
    )
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _is_lineage_run(out: Path) -> bool:
    from ..config import read_yaml

    if not (out / CONFIG_FILE).is_file():
        return False
    try:
        saved = read_yaml(out / CONFIG_FILE)
    except LmforgeError:
        return False
    return {"corpus", "budget_s", "models"} <= set(saved)


def _prepare(cfg: LineageConfig, corpus: Path, out: Path) -> tuple[Any, Path]:
    """One tokenizer (trained on the whole file) and the train/val shards every model reads."""
    from ..data.prepare import prepare
    from ..data.prepare_config import PrepareConfig
    from ..tokenizers.train import TokenizerConfig, save_tokenizer_dir, train_tokenizer

    # min_frequency 1: every character of the file gets an id, so no model meets <unk>.
    tcfg = TokenizerConfig(
        kind=cfg.tokenizer, vocab_size=cfg.vocab_size, min_frequency=1, threads=cfg.threads
    )
    tok = train_tokenizer(tcfg, [corpus])
    save_tokenizer_dir(tok, out / "tokenizer")
    data = out / "data"
    prepare(
        PrepareConfig(
            tokenizer=str(out / "tokenizer"),
            input=[str(corpus)],
            out=str(data),
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            txt_docs="file",  # one document: validation is the file's tail, as in nanoGPT
            workers=cfg.threads,
        )
    )
    return tok, data


def _all_ids(shards: Any) -> np.ndarray:
    return shards.window(0, len(shards))


def _ngram(cfg, name, order, train_ids, val_ids, tok, start) -> dict[str, Any]:
    from .lineage_ngram import generate_tokens, score_windows, train_token_ngram, window_targets

    ng = train_token_ngram(train_ids, tok.vocab_size, order)
    losses = score_windows(ng, val_ids, cfg.context)
    _, positions = window_targets(len(val_ids), cfg.context)
    ids, rate = generate_tokens(ng, start, cfg.gen_tokens, cfg.temperature, cfg.seed)
    return {
        "name": name,
        "family": f"{order}-gram, modified Kneser-Ney",
        "params": ng.n_ngrams,
        "params_unit": "n-grams",
        "train_s": ng.train_s,
        "curve": [],
        "gen_tok_per_s": rate,
        "sample": tok.decode(ids),
        "losses": losses,
        "positions": positions,
    }


def _neural(cfg, name, arch, data, out, val_ids, tok, start) -> dict[str, Any]:
    from ..runs import load_run
    from .lineage_neural import count_params, generation_speed, score_windows, train_neural
    from .lineage_ngram import window_targets

    seed_everything(cfg.seed)
    run_dir = out / "runs" / name
    trained = train_neural(cfg, arch, data, run_dir)
    model = load_run(run_dir, need="decoder").model
    t0 = time.perf_counter()
    losses = score_windows(model, val_ids, cfg.context)
    _, positions = window_targets(len(val_ids), cfg.context)
    ids, rate = generation_speed(model, start, cfg.gen_tokens, cfg.temperature, cfg.seed)
    family = {
        "rnn": f"{getattr(model.config, 'cell', 'rnn').upper()}, recurrent",
        "gpt": "GPT-2 decoder",
        "llama": "LLaMA decoder",
    }[arch]
    return {
        "name": name,
        "family": family,
        "params": count_params(model),
        "params_unit": "parameters",
        **trained,
        "eval_s": time.perf_counter() - t0,
        "gen_tok_per_s": rate,
        "sample": tok.decode(ids),
        "losses": losses,
        "positions": positions,
    }


def _summary(
    losses: np.ndarray, positions: np.ndarray, val_meta: dict, context: int
) -> dict[str, Any]:
    """Validation figures from per-token losses (nats): bpc, nats/token, loss by position."""
    if not np.all(np.isfinite(losses)):
        raise LmforgeError("a validation loss is not finite; the model diverged (lower --lr)")
    total = float(losses.sum())
    sums = np.bincount(positions, weights=losses, minlength=context)
    counts = np.bincount(positions, minlength=context)
    by_pos = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan) / math.log(2)
    return {
        "val_nats_per_token": total / len(losses),
        "val_bpc": total / math.log(2) / int(val_meta["chars"]),
        "val_bits_by_position": [round(float(x), 5) for x in by_pos],
    }
