"""The stage contract, shared by every training stage (pretrain, SFT, reward, RS, DPO, PPO).

A stage either starts from a parent run (`--from RUN`: the parent's weights and
tokenizer through `load_run`, a new optimizer, step 0, the parent recorded in
every checkpoint's trainer state) or continues itself (`--resume`: the run's own
latest checkpoint, bitwise). It writes one run folder (`lmforge.runs.layout`).
`StageConfig` holds the fields every stage has; `start_stage` does the checks
that come before anything is built. `--resume` of a run whose budget
(`--max-steps`, `--max-tokens`, `--max-time`) is already spent is complete: the
stage says so and returns without writing anything.

The run folder follows lmforge's output policy (`lmforge.outputs`): `--out`
never overlaps an input; a folder that is not a run lmforge made is refused;
a run is replaced only with `--force`. `with start:` holds the run-folder lock
for the stage's whole life, and removes a folder the stage created if it
fails before writing its first checkpoint (so no half-made run is left).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError, is_main_process
from ..config import field_
from ..outputs import RunLock, check_not_overlapping
from ..runs import Run, RunLayout, load_run, parent_record
from ..runs.checkpoint import Checkpoint, find_resume_checkpoint, list_checkpoints
from ..runs.layout import LOCK_NAME
from ..train.config import TrainConfig
from ..train.loop import TrainResult, budget_spent, state_counters


@dataclass
class StageConfig(TrainConfig):
    """The loop's settings plus the run folder and the parent run of a stage."""

    out: str = field_("", help="run folder to create (or resume)")
    init_from: str = field_(
        "",
        help="start from this run's weights and tokenizer (new optimizer, step 0, the parent "
        "recorded); `--from RUN`",
        aliases=("--from",),
    )
    force: bool = field_(
        False, help="replace an existing run in --out (its checkpoints and metrics are deleted)"
    )
    lora: str = field_(
        "",
        help="train LoRA adapters on a frozen model instead of all weights, e.g. "
        "r=8,alpha=16,dropout=0.05,targets=q,v (targets last: q k v o gate up down, "
        "all-linear, or module paths); empty: train everything",
    )

    def validate(self) -> None:
        super().validate()
        if not self.out:
            raise ConfigError("out", "required: the run folder to write")
        if self.lora:
            from ..models.lora import parse_lora_spec

            parse_lora_spec(self.lora)  # a bad spec is one line before anything is read
        if self.init_from and Path(self.init_from).resolve() == Path(self.out).resolve():
            raise ConfigError(
                "init_from", "is the output run itself; use --resume to continue a run"
            )


@dataclass
class StageStart:
    """What a stage starts from: its own checkpoint (resume), a parent run, or nothing."""

    resume: Checkpoint | None
    parent: Run | None
    parent_info: dict[str, Any] | None  # recorded in trainer state (kept across resumes)
    complete: str | None = None  # `--resume` of a run whose budget is already spent: which
    out: Path | None = None
    clear_first: bool = False  # --force over an existing run: empty it once locked
    fresh: bool = False  # the folder did not exist (or was empty) before this stage
    existed: bool = False  # it existed (empty): a failed stage empties it, keeps it
    _lock: RunLock | None = field(default=None, repr=False)

    def __enter__(self) -> StageStart:
        """Lock the run folder (main process), emptying it first under --force."""
        if self.out is not None and not self.complete:
            self._lock = RunLock(self.out, enabled=is_main_process())
            self._lock.acquire()
            if self.clear_first and is_main_process():
                RunLayout(self.out).clear()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            failed = exc_type is not None
            if failed and self.fresh and self._lock and self._lock.enabled:
                if not list_checkpoints(self.out):  # nothing worth keeping was written
                    self._lock.release()
                    if self.existed:
                        for p in self.out.iterdir():
                            shutil.rmtree(p) if p.is_dir() else p.unlink()
                    else:
                        shutil.rmtree(self.out, ignore_errors=True)
        finally:
            if self._lock is not None:
                self._lock.release()

    def completed_result(self) -> TrainResult:
        """What the finished run reached, from its checkpoint (nothing is trained or written)."""
        st = state_counters(self.resume.state)
        return TrainResult(
            step=st.step,
            tokens_seen=st.tokens_seen,
            elapsed_s=st.elapsed_s,
            train_loss=None,
            best_val_loss=st.best_val_loss,
            stop_reason=self.complete or "complete",
            checkpoint=self.resume.path,
            nan_skipped=st.nan_skipped,
        )


def start_stage(
    cfg: StageConfig,
    *,
    resume: bool,
    need: str | None = None,
    inputs: tuple[tuple[str, str | Path], ...] = (),
) -> StageStart:
    """Check the output folder and open the parent run, before anything heavy is built.

    `need` is the kind of model the stage trains ("decoder", "transformer-decoder", ...);
    a parent of another kind is refused. On `--resume` the parent is not reopened: the
    run's own checkpoint holds the weights, and its trainer state the parent's record.
    `inputs` (`(name, path)`, e.g. `("data", cfg.data)`) may not overlap `--out`.
    Use the result as a context manager around the stage's work (the lock).

    A parent trained with `--lora` arrives merged (`load_run`); a parent with a soft
    prompt (a prompt-tune run) arrives without it: a child trains the model itself.
    """
    out = Path(cfg.out)
    layout = RunLayout(out)
    existed = out.exists()
    # Only the main process judges the folder: under torchrun the others look after
    # it has started writing there.
    main = is_main_process()
    if main:
        check_not_overlapping(out, (*inputs, ("parent run", cfg.init_from)))
        if existed and not out.is_dir():
            raise LmforgeError(f"--out {out}: exists and is not a folder; choose another --out")
    # A lone .lock is what a writer killed before writing anything leaves: still empty.
    fresh = main and (not existed or {p.name for p in out.iterdir()} <= {LOCK_NAME})
    clear_first = False
    if main and not fresh and not layout.made_by_lmforge():
        raise LmforgeError(
            f"--out {out}: exists and is not an lmforge run folder; lmforge replaces only what "
            "it wrote, even with --force; choose a new or empty --out"
        )
    ckpt = find_resume_checkpoint(out) if resume else None
    if main and not resume and not fresh:
        if not cfg.force:
            what = "checkpoints" if list_checkpoints(out) else "a run with no checkpoint yet"
            raise LmforgeError(
                f"--out {out}: already holds {what}; pass --resume to continue it, --force to "
                "replace it, or choose another --out"
            )
        clear_first = True
    if ckpt is not None:
        if ckpt.state.get("stage") == "import":
            raise import_not_resumable(out)
        done = budget_spent(state_counters(ckpt.state), cfg)
        return StageStart(ckpt, None, ckpt.state.get("parent"), complete=done, out=out)
    if not cfg.init_from:
        return StageStart(
            None, None, None, out=out, clear_first=clear_first, fresh=fresh, existed=existed
        )
    parent = load_run(cfg.init_from, need=need)
    from ..models.soft_prompt import detach_soft_prompt

    detach_soft_prompt(parent.model)
    return StageStart(
        None,
        parent,
        parent_record(parent),
        out=out,
        clear_first=clear_first,
        fresh=fresh,
        existed=existed,
    )


def import_not_resumable(run: str | Path) -> LmforgeError:
    """The error for `--resume` of a run made by `lmforge import hf` (it has no training)."""
    return LmforgeError(
        f"{run}: was made by `lmforge import hf` and has no training to resume; start a new "
        f"run from it with --from {run}"
    )


def check_parent_tokenizer(parent: Run, tok_hash: str, data: str) -> None:
    """The stage's data must be tokenized with the parent's tokenizer."""
    if parent.tokenizer.hash != tok_hash:
        raise LmforgeError(
            f"{data}: was prepared with tokenizer {tok_hash}, but the parent run "
            f"{parent.path} uses {parent.tokenizer.hash}; prepare the data with "
            f"--tokenizer {parent.layout.tokenizer}"
        )


def _machine_memory(device: str) -> int | None:
    """Bytes of memory the training device has (None if it cannot be told)."""
    import os

    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(torch.device(device)).total_memory
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_memory(arch: str, mcfg: Any, batch_size: int, seq_len: int, device: str) -> None:
    """Refuse a config whose estimated training memory exceeds the machine's, before allocating."""
    from ..common import pick_device
    from ..models.info import train_memory_estimate

    have = _machine_memory(pick_device(device))
    if have is None:
        return
    need = train_memory_estimate(arch, mcfg, batch_size, seq_len)
    if need["total"] <= have:
        return
    gib = 1024**3
    parts = ", ".join(
        f"{k.replace('_', ' ')} {v / gib:,.1f}" for k, v in need.items() if k != "total"
    )
    raise LmforgeError(
        f"the model needs about {need['total'] / gib:,.1f} GiB to train ({parts} GiB) but this "
        f"machine has {have / gib:,.1f} GiB; lower --model.block-size, --model.d-model, "
        "--batch-size or --seq-len (`lmforge model info` shows a model's size)"
    )


def build_stage_model(
    arch: str, mcfg: Any, seed: int, state_dict: dict | None = None, *, lora: str = ""
):
    """(model, parameter count): seeded so every rank builds the same weights, then the
    parent's `state_dict` if given (tied weights counted once), then the `--lora`
    adapters if asked (the base frozen; the count includes the adapters)."""
    from ..common import seed_everything
    from ..models import build_model

    seed_everything(seed)
    model = build_model(arch, mcfg)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    if lora:
        from ..models.lora import apply_lora, parse_lora_spec

        apply_lora(model, parse_lora_spec(lora), seed=seed)
    n_params = sum(w.numel() for w in {id(w): w for w in model.parameters()}.values())
    return model, n_params


def trainable_note(model: Any) -> str:
    """The start line's note on adapters (", LoRA r=8 ... on q,v: 12,288 trainable"), or ""."""
    from ..models.lora import count_trainable, lora_config_of

    cfg = lora_config_of(model)
    if cfg is None:
        return ""
    train, _ = count_trainable(model)
    return f", LoRA r={cfg.r} alpha={cfg.alpha:g} on {','.join(cfg.targets)}: {train:,} trainable"


def check_resume_lora(ckpt: Checkpoint, lora: str) -> None:
    """`--resume` must rebuild the adapters the checkpoint was trained with."""
    from ..models import META_LORA, read_model_meta
    from ..models.lora import LoraConfig, parse_lora_spec

    _, _, meta = read_model_meta(ckpt.model_file)
    saved = meta.get(META_LORA)
    want = parse_lora_spec(lora).to_json() if lora else None
    if saved == want:
        return
    had = f"--lora {LoraConfig.from_json(saved).spec()}" if saved else "no --lora"
    asked = f"--lora {lora}" if lora else "no --lora"
    raise LmforgeError(
        f"{ckpt.model_file}: the checkpoint was trained with {had}, this run asks for {asked}; "
        "resume with the run's own config.yaml"
    )


def write_run_files(out: Path, cfg: Any, tok: Any) -> None:
    """The run folder's config.yaml and tokenizer/ (main process only)."""
    from ..config import save_config

    layout = RunLayout(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, layout.config)
    tok.save(layout.tokenizer)


def run_stage(start: StageStart, cfg: Any, name: str, more: str, body) -> TrainResult:
    """The end every fine-tuning stage shares: a run whose budget is spent says so and
    returns; otherwise, under the run-folder lock, the process group is set up,
    `body(ctx)` trains, and the group is torn down whatever happens.

    `more` is the flag that trains further ("--max-steps", "--epochs", ...).
    """
    import torch

    from ..common import print0
    from ..train import distributed as D

    if start.complete is not None:
        print0(
            f"{name}: {cfg.out} is complete (step {start.resume.step}, {start.complete} "
            f"reached); nothing to do — raise {more} to train further"
        )
        return start.completed_result()
    with start:
        ctx = D.init_distributed(cfg.device, cfg.parallel)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            return body(ctx)
        finally:
            D.shutdown()


def origin_note(start: StageStart) -> str:
    """Where the weights come from, for a stage's start line."""
    if start.resume is not None:
        return f"resuming from {start.resume.path}"
    return f"from {start.parent.path} (step {start.parent.step})"
