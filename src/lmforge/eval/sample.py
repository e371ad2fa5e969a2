"""Text from a run folder's model (opened by `lmforge.runs.load_run`), streamed to stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..common import LmforgeError, pick_device
from ..inference.sampling import SamplingConfig
from ..inference.stop_text import StopText
from ..runs import load_run

# The verb's defaults (the one config, SamplingConfig, with these fields changed).
SAMPLE_DEFAULTS = SamplingConfig(max_new_tokens=200, temperature=0.8, top_k=50)


class _Printer:
    """Shows the samples one after another, as if generated in turn, while all run together.

    The first sample streams live; the others collect their text and show it (and
    then stream) when their turn comes. A stop string is cut from the text: a tail
    that could start one is held back until it cannot (`StopText`).
    """

    def __init__(self, out: TextIO, prompt: str, n: int, stop_strings: list[str]):
        self.out, self.prompt, self.n = out, prompt, n
        self.filters = [StopText(stop_strings) for _ in range(n)]
        self.pending = [""] * n  # text the filter released that is not written yet
        self.finished = [False] * n  # the row's last event came
        self.current = 0
        self._header()

    @property
    def texts(self) -> list[str]:
        """Each sample's new text (cut at a stop string)."""
        return [f.text for f in self.filters]

    def _header(self) -> None:
        if self.n > 1:
            self.out.write(f"--- sample {self.current + 1} ---\n")
        self.out.write(self.prompt)

    def add(self, row: int, delta: str, final: bool) -> None:
        self.pending[row] += self.filters[row].push(delta)
        if final and not self.finished[row]:
            self.pending[row] += self.filters[row].flush()
            self.finished[row] = True
        while self.current < self.n:
            r = self.current
            if self.pending[r]:
                self.out.write(self.pending[r])
                self.pending[r] = ""
            if not self.finished[r]:
                break
            self.out.write("\n")
            self.current += 1
            if self.current < self.n:
                self._header()
        self.out.flush()


def sample_run(
    run: str | Path,
    prompt: str = "",
    cfg: SamplingConfig | None = None,
    *,
    step: int | None = None,
    device: str = "auto",
    compile: bool = False,
    out: TextIO | None = None,
    chat: bool = False,
    soft_prompt: str | Path | None = None,
    **fields,
) -> list[str]:
    """``cfg.n`` continuations of `prompt` (sharing one prefill), streamed to `out` (stdout).

    ``cfg`` defaults to `SAMPLE_DEFAULTS`; keyword ``fields`` (``max_new_tokens=``,
    ``n=``, ``seed=``, any SamplingConfig field) override it. A sample ends at the
    tokenizer's EOS or ``<|end|>`` (`default_stop_ids`), at ``cfg.stop_token_ids``,
    or before a stop string. Returns prompt + new text of each sample, as shown.
    With ``chat``, `prompt` is a user message rendered through the chat template
    (`tokenizers.chat`), and only the assistant's reply is shown and returned.
    ``soft_prompt`` (a ``soft_prompt.safetensors`` made by `lmforge prompt-tune` on
    this run) puts its soft tokens around the prompt ids: before + prompt + after;
    a prompt-tune run's own soft prompt is used without it.
    """
    from ..config import build_config
    from ..inference.engine import default_stop_ids, stream_generate

    cfg = build_config(SamplingConfig, base=cfg or SAMPLE_DEFAULTS, overrides=fields)
    out = out or sys.stdout
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    model, tok = opened.model, opened.tokenizer
    from ..models.soft_prompt import load_soft_prompt, soft_prompt_of

    soft = load_soft_prompt(soft_prompt, model, opened) if soft_prompt else soft_prompt_of(model)
    if chat:
        from ..tokenizers.chat import generation_prompt

        ids = generation_prompt(tok, [{"role": "user", "content": prompt}])
    else:
        # An empty prompt starts a new document, as training saw them begin (after EOS).
        ids = tok.encode(prompt) if prompt else []
        if not prompt or not ids:
            ids = [tok.eos_id if tok.eos_id is not None else 0] + ids
    if soft is not None:
        ids = soft.surround(ids)  # virtual ids the embedding maps to the soft tokens
    context = getattr(getattr(model, "config", None), "block_size", None)
    if context is not None and len(ids) >= context:
        # Checked before anything is printed, so the error is a line of its own.
        raise LmforgeError(
            f"the prompt has {len(ids)} tokens but the model's context is {context}; shorten "
            "it to leave room for new tokens"
        )
    shown = "" if chat else prompt
    printer = _Printer(out, shown, cfg.n, list(cfg.stop_strings))
    events = stream_generate(
        model, [ids], cfg, tokenizer=tok, pad_id=tok.pad_id or 0,
        stop_ids=[default_stop_ids(tok)], compile=compile,
    )  # fmt: skip
    for ev in events:
        printer.add(ev.row, ev.text_delta, ev.token is None)
    return [shown + t for t in printer.texts]
