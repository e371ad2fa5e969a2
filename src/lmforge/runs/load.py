"""`load_run`: the one way to open a run folder (model, tokenizer, stage config, checkpoint).

Every verb and stage that reads a run comes through here, so the checks are the
same everywhere: the folder is a run, the checkpoint is complete and verified
(sizes and sha256), the tokenizer is the one the weights were trained with (by
hash), the model's vocabulary covers the tokenizer, and the model is of the kind
the caller needs (a decoder for sampling, an encoder for fill-mask) before any
weights are read.

`parent_record(run)` is what a child stage writes into its own config when it
starts `--from` a run: the parent's path, step, stage and checkpoint digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError
from .checkpoint import Checkpoint, latest_checkpoint, open_checkpoint
from .layout import RunLayout

# What a caller may need of a run's model; arch names are lmforge.models' registry names.
KINDS = {
    "decoder": ("gpt", "llama", "rnn"),  # generates text left to right
    "transformer-decoder": ("gpt", "llama"),  # features(), heads, packing, HF export
    "encoder": ("bert",),  # masked LM
}
KIND_NAMES = {
    "decoder": "a decoder (GPT, LLaMA or RNN) run",
    "transformer-decoder": "a GPT or LLaMA run",
    "encoder": "a BERT (masked-LM) run",
}
VERB_HINT = {
    "decoder": "for a BERT run use `lmforge fill-mask`",
    "transformer-decoder": "train one with `lmforge pretrain --arch llama`",
    "encoder": "for a decoder run use `lmforge sample`",
}


@dataclass
class Run:
    """An opened run: model (on `device`, eval mode), tokenizer, configs and the checkpoint."""

    path: Path
    model: Any
    tokenizer: Any
    arch: str
    checkpoint: Checkpoint
    config: dict[str, Any] = field(default_factory=dict)  # the stage's config.yaml, as read
    stage: str = "unknown"  # the stage that wrote the checkpoint: pretrain, sft, import, ...

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)


def find_checkpoint(run: str | Path, step: int | None = None, name: str | None = None):
    """The verified checkpoint of a run folder: `step`, the folder `name`, or `latest`."""
    layout = RunLayout(run)
    if not layout.root.is_dir():
        raise LmforgeError(f"{layout.root}: no such run folder")
    if not layout.looks_like_run():
        raise LmforgeError(
            f"{layout.root}: not a run folder (no {layout.checkpoints.name}/ and no "
            f"{layout.latest.name}); give a folder written by `lmforge pretrain` or `lmforge "
            "import hf`"
        )
    if step is not None and name is not None:
        raise LmforgeError("give a checkpoint step or a checkpoint name, not both")
    if step is not None or name is not None:
        folder = layout.step(step) if step is not None else layout.checkpoints / str(name)
        if not folder.is_dir():
            have = ", ".join(p.name for p in sorted(layout.checkpoints.glob("step_*"))) or "none"
            raise LmforgeError(f"{folder}: no such checkpoint (the run has: {have})")
        return open_checkpoint(folder)
    folder = latest_checkpoint(layout.root)
    if folder is None:
        raise LmforgeError(
            f"{layout.checkpoints}: holds no complete checkpoint yet; wait for the run's first "
            "save or resume it"
        )
    return open_checkpoint(folder)


def read_run_config(run: str | Path) -> dict[str, Any]:
    """RUN/config.yaml as a dict ({} when the run has none)."""
    from ..config import read_yaml

    path = RunLayout(run).config
    return read_yaml(path) if path.is_file() else {}


def load_tokenizer(run: str | Path, ckpt: Checkpoint | None = None):
    """RUN/tokenizer, checked against the checkpoint's recorded tokenizer hash."""
    from ..tokenizers import Tokenizer

    layout = RunLayout(run)
    if not layout.tokenizer.is_dir():
        raise LmforgeError(
            f"{layout.tokenizer}: missing; a run folder keeps the tokenizer its model was "
            "trained with — restore it"
        )
    tok = Tokenizer.load(layout.tokenizer)
    saved = ckpt.state.get("tokenizer_hash") if ckpt is not None else None
    if saved is not None and saved != tok.hash:
        raise LmforgeError(
            f"{layout.tokenizer}: is not the tokenizer the checkpoint was trained with "
            f"(hash {tok.hash}, checkpoint {saved}); restore the run's tokenizer/ folder"
        )
    return tok


def check_kind(arch: str, need: str | None, where: Path) -> None:
    """Refuse a model of the wrong kind, naming what it is and what to do."""
    if need is None:
        return
    if need not in KINDS:
        raise ValueError(f"need must be one of {sorted(KINDS)}, got {need!r}")
    if arch not in KINDS[need]:
        raise LmforgeError(
            f"{where}: is a {arch} run, this needs {KIND_NAMES[need]}; {VERB_HINT[need]}"
        )


def load_run(
    run: str | Path,
    step: int | None = None,
    *,
    checkpoint: str | None = None,
    device: str = "cpu",
    need: str | None = None,
    dtype: Any = None,
    lora: str = "merge",
) -> Run:
    """Open `run` at `step` (or the checkpoint folder `checkpoint`, default `latest`).

    `need` ("decoder", "transformer-decoder", "encoder") refuses a model of another
    kind before its weights are read. Errors are `LmforgeError`s naming the file.

    A run trained with `--lora` opens with its adapters merged into plain linear
    layers (`lora="merge"`: what sampling, export and a child stage's `--from`
    want); `lora="keep"` gives the adapter modules as trained (`export peft`). A
    prompt-tune run's model keeps its soft prompt attached. A PPO run's checkpoint
    holds the policy and its critic (a value head on the policy's trunk): it opens as
    the policy, since the critic is of use only to PPO's own training (which resumes
    from the checkpoint file, not through here).
    """
    from ..models import load_model, read_model_meta
    from ..models.weights import META_HEAD

    path = Path(run)
    ckpt = find_checkpoint(path, step, checkpoint)
    arch, _, meta = read_model_meta(ckpt.model_file)
    check_kind(arch, need, path)
    tok = load_tokenizer(path, ckpt)
    head = False if meta.get(META_HEAD) == "value" else None
    model = load_model(ckpt.model_file, device=device, dtype=dtype, lora=lora, head=head)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and vocab < tok.vocab_size:
        raise LmforgeError(
            f"{ckpt.model_file}: model vocabulary {vocab} is smaller than the tokenizer's "
            f"{tok.vocab_size}; the run's tokenizer/ does not belong to this model"
        )
    stage = str(ckpt.state.get("stage") or ("import" if "imported_from" in ckpt.state else ""))
    return Run(
        path=path,
        model=model.eval(),
        tokenizer=tok,
        arch=arch,
        checkpoint=ckpt,
        config=read_run_config(path),
        stage=stage or "unknown",
    )


def parent_record(parent: Run) -> dict[str, Any]:
    """What a stage started `--from` a run records about it (in trainer state and report)."""
    info = parent.checkpoint.state.get("files", {}).get("model.safetensors", {})
    return {
        "run": str(parent.path.resolve()),
        "step": parent.step,
        "stage": parent.stage,
        "arch": parent.arch,
        "weights_sha256": info.get("sha256"),
        "tokenizer_hash": parent.tokenizer.hash,
    }
