"""Text from a run folder's model (opened by `lmforge.runs.load_run`), streamed to stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..common import ConfigError, pick_device
from ..runs import load_run


class _TextStream:
    """Prints decoded text as tokens arrive; decodes the whole row so merges print right."""

    def __init__(self, tok, out: TextIO):
        self.tok, self.out = tok, out
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, row: int, token: int) -> None:
        self.ids.append(token)
        # A byte-level token may end inside a character: wait until it decodes whole.
        self._show(self.tok.decode(self.ids), final=False)

    def finish(self) -> None:
        """Print what is still held back (a character the model never completed)."""
        self._show(self.tok.decode(self.ids), final=True)

    def _show(self, text: str, final: bool) -> None:
        if text.endswith("\ufffd") and not final:
            return
        if text.startswith(self.shown):
            self.out.write(text[len(self.shown) :])
        else:
            self.out.write(text)
        self.out.flush()
        self.shown = text


def sample_run(
    run: str | Path,
    prompt: str = "",
    *,
    step: int | None = None,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 1.0,
    seed: int = 0,
    num_samples: int = 1,
    device: str = "auto",
    compile: bool = False,
    out: TextIO | None = None,
) -> list[str]:
    """Generate `num_samples` continuations of `prompt`, streamed to `out` (stdout); returns them."""
    import torch

    from ..config import validate
    from ..inference.engine import generate
    from ..inference.sampling import SamplingConfig

    if num_samples < 1:
        raise ConfigError("num_samples", f"must be >= 1, got {num_samples}")
    out = out or sys.stdout
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    model, tok = opened.model, opened.tokenizer
    stop = [tok.eos_id] if tok.eos_id is not None else []
    # An empty prompt starts a new document, as training saw them begin (after EOS).
    ids = tok.encode(prompt) if prompt else []
    if not prompt or not ids:
        ids = [tok.eos_id if tok.eos_id is not None else 0] + ids
    texts = []
    for i in range(num_samples):
        cfg = SamplingConfig(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed + i,
            stop_token_ids=stop,
        )
        validate(cfg)
        if num_samples > 1:
            out.write(f"--- sample {i + 1} ---\n")
        out.write(prompt)
        stream = _TextStream(tok, out)
        with torch.inference_mode():
            new = generate(
                model, [ids], cfg, pad_id=tok.pad_id or 0, stream=stream, compile=compile
            )[0]
        stream.finish()
        out.write("\n")
        out.flush()
        texts.append(prompt + tok.decode(new))
    return texts
