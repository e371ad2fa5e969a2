"""The recipe YAML: a list of stages, each `{name, options}`, validated before anything is written.

```yaml
stages:
  - name: world
    size: small
  - name: pretrain
    preset: cpu-small
    max_time: 210
  - name: ppo
    from: rs          # the parent stage (default: the nearest earlier stage that fits)
```

Each stage kind (`KINDS`) is one lmforge verb; its options are that verb's config fields
(`max_time`, `model.block_size` or a nested `model: {block_size: 256}`), turned into the
verb's flags (`--max-time 210`); `{out}` in a value is the recipe's folder. The recipe wires the paths between stages (`--data`,
`--from`, `--out`), so a recipe names none of them. `load_recipe` checks every stage
kind, option and input and builds each stage's argv; a mistake is one `LmforgeError`
naming `file:line`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError

# The files of the synthetic world the later stages read (`lmforge world`'s layout).
WORLD_PRETRAIN = "pretrain"
WORLD_INSTRUCTIONS = "instructions"
WORLD_PREFERENCES = "preferences"
TASK_FILES = ("test.jsonl", "heldout_templates.jsonl", "heldout_tasks.jsonl")
MODEL_STAGES = ("pretrain", "sft", "rs", "ppo")  # the models `eval` measures


@dataclass(frozen=True)
class Kind:
    """One stage kind: the verb it runs, its config class, and where its output goes."""

    verb: tuple[str, ...]
    config: str  # "module:Class" of the verb's config dataclass ("" : argparse-only options)
    folder: str  # default folder under the recipe's root
    parents: tuple[str, ...] = ()  # kinds whose run it may start from (nearest earlier wins)
    extra: tuple[str, ...] = ()  # options the verb takes outside its config dataclass
    needs_world: bool = False
    training: bool = False  # a stage-contract run (resumable with --resume)


KINDS: dict[str, Kind] = {
    "world": Kind(("world",), "lmforge.data.world.config:WorldConfig", "world"),
    "tokenizer": Kind(
        ("tokenizer", "train"), "lmforge.tokenizers.train:TokenizerConfig", "tokenizer",
        extra=("input",),
    ),
    "shards": Kind(("data", "prepare"), "lmforge.data.prepare_config:PrepareConfig", "shards"),
    "pretrain": Kind(
        ("pretrain",), "lmforge.stages.pretrain_config:PretrainConfig", "run", training=True
    ),
    "sft": Kind(
        ("sft",), "lmforge.stages.sft_config:SFTConfig", "sft", parents=("pretrain",),
        needs_world=True, training=True,
    ),
    "reward": Kind(
        ("reward", "train"), "lmforge.stages.reward:RewardConfig", "rm", parents=("sft",),
        needs_world=True, training=True,
    ),
    "reward_eval": Kind(
        ("eval", "reward"), "", "eval_rm", parents=("reward",), needs_world=True,
        extra=("fmt", "rating_table", "batch_size"),
    ),
    "rs": Kind(
        ("rs",), "lmforge.stages.rs_config:RSConfig", "rs", parents=("sft",),
        needs_world=True, training=True,
    ),
    "ppo": Kind(
        ("ppo",), "lmforge.stages.ppo_config:PPOConfig", "ppo", parents=("rs", "sft"),
        needs_world=True, training=True,
    ),
    "eval": Kind(
        ("eval", "tasks"), "lmforge.eval.tasks:TaskEvalConfig", "eval", needs_world=True,
        extra=("models",),
    ),
}  # fmt: skip
RECIPE_KEYS = ("name", "from", "out")  # stage keys that are the recipe's, not the verb's


@dataclass
class Step:
    """One command of the recipe: a stage's verb with its wired flags (an `eval` stage is
    one step per model, then `compare`)."""

    name: str  # unique: the state file's key and the log's name
    kind: str
    folder: str  # relative to the recipe's root
    argv: list[str]  # after `lmforge`
    training: bool = False
    done_file: str = ""  # what the finished verb leaves in `folder` (or a results kind)
    results_kind: str = ""
    compare: list[tuple[str, str]] = field(default_factory=list)  # compare: (name, folder)


@dataclass
class Recipe:
    path: Path
    stages: list[dict[str, Any]]  # as read (the fingerprint is over these)
    steps: list[Step]

    @property
    def fingerprint(self) -> str:
        """A hash of the stages: a folder made by another recipe is not resumed with this one."""
        raw = json.dumps(self.stages, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def _lines(text: str) -> tuple[list[int], list[dict[str, int]]]:
    """The 1-based line of each stage and of each of its keys (for error messages)."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return [], []
    stage_lines: list[int] = []
    key_lines: list[dict[str, int]] = []
    if not isinstance(root, yaml.MappingNode):
        return [], []
    for k, v in root.value:
        if k.value == "stages" and isinstance(v, yaml.SequenceNode):
            for item in v.value:
                stage_lines.append(item.start_mark.line + 1)
                keys = {}
                if isinstance(item, yaml.MappingNode):
                    keys = {kk.value: kk.start_mark.line + 1 for kk, _ in item.value}
                key_lines.append(keys)
    return stage_lines, key_lines


def _flatten(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{model: {block_size: 256}}` -> `{"model.block_size": 256}`."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        key = prefix + str(k).replace("-", "_")
        if isinstance(v, dict) and key != "models":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _at_root(v: Any, root: str | Path) -> Any:
    """`{out}` in a string option is the recipe's root (e.g. `{out}/world/pretrain`)."""
    if isinstance(v, str):
        return v.replace("{out}", str(root))
    if isinstance(v, list):
        return [_at_root(x, root) for x in v]
    return v


def _flag_value(v: Any) -> list[str]:
    if v is None:
        return ["none"]
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v]
    return [str(v)]


def to_flags(options: dict[str, Any]) -> list[str]:
    """Options as the verb's flags: `max_time: 210` -> `--max-time 210`, booleans as
    `--x` / `--no-x`, lists as several values."""
    argv: list[str] = []
    for key, v in options.items():
        flag = "--from" if key == "init_from" else "--" + key.replace("_", "-")
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        else:
            argv += [flag, *_flag_value(v)]
    return argv


def _config_class(kind: Kind) -> type | None:
    if not kind.config:
        return None
    module, _, cls = kind.config.partition(":")
    return getattr(importlib.import_module(module), cls)


def _check_options(kind: Kind, options: dict[str, Any], wired: dict[str, Any]) -> None:
    """Unknown or bad options raise ConfigError naming the field (the verb's own checks)."""
    from ..config import apply_overrides, validate

    cls = _config_class(kind)
    ours = {k: v for k, v in options.items() if k not in kind.extra}
    if cls is None:
        if ours:
            name = next(iter(ours))
            raise ConfigError(name, f"unknown option; known: {', '.join(kind.extra)}")
        return
    cfg = apply_overrides(cls(), {**wired, **ours})
    validate(cfg)


def load_recipe(path: str | Path, root: str | Path = ".") -> Recipe:
    """Read and check a recipe YAML; nothing is written. Errors name `file:line`.

    Every stage's folder (and so every wired path) is under `root`, the recipe's --out.
    """
    from ..config import read_yaml

    path = Path(path)
    data = read_yaml(path)
    stage_lines, key_lines = _lines(path.read_text(encoding="utf-8"))
    unknown_top = set(data) - {"stages", "description"}
    if unknown_top:
        raise LmforgeError(
            f"{path}: unknown top-level key {sorted(unknown_top)[0]!r}; a recipe has "
            "`stages:` (and an optional `description:`)"
        )
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise LmforgeError(f"{path}: `stages:` must be a non-empty list of {{name: ..., ...}}")
    seen: dict[str, tuple[str, str]] = {}  # stage name -> (kind, folder)
    steps: list[Step] = []
    world: str | None = None
    for i, raw in enumerate(stages):
        line = stage_lines[i] if i < len(stage_lines) else 0
        keys = key_lines[i] if i < len(key_lines) else {}
        where = f"{path}:{line}" if line else f"{path}: stage {i + 1}"
        if not isinstance(raw, dict) or "name" not in raw:
            raise LmforgeError(f"{where}: a stage is a mapping with a `name:`")
        name = str(raw["name"])
        if name not in KINDS:
            raise LmforgeError(f"{where}: unknown stage {name!r}; known stages: {', '.join(KINDS)}")
        if name in seen:
            raise LmforgeError(f"{where}: stage {name!r} appears twice; a recipe runs each once")
        kind = KINDS[name]
        folder = str(Path(root) / str(raw.get("out") or kind.folder))
        options = _flatten({k: v for k, v in raw.items() if k not in RECIPE_KEYS})
        options = {k: _at_root(v, root) for k, v in options.items()}
        fail = _Where(where, str(path), keys, name).error
        if kind.needs_world and world is None:
            raise fail("needs the world's files: put a `world` stage before it")
        parent = _parent(name, kind, raw.get("from"), seen, fail)
        try:
            new = _steps(name, kind, folder, options, parent, world, seen)
            for _, wired in new:
                _check_options(kind, _options_of(options, kind), wired)
        except ConfigError as e:
            raise fail(str(e), e.field.split(".")[0]) from None
        steps += [st for st, _ in new]
        seen[name] = (name, folder)
        if name == "world":
            world = folder
    return Recipe(path, stages, steps)


@dataclass(frozen=True)
class _Where:
    """Where a stage is in the YAML, for its errors: `file:line: stage NAME: ...`."""

    where: str  # file:line of the stage
    path: str
    keys: dict[str, int]  # key -> its line
    name: str

    def error(self, msg: str, key: str | None = None) -> LmforgeError:
        at = f"{self.path}:{self.keys[key]}" if key and key in self.keys else self.where
        return LmforgeError(f"{at}: stage {self.name}: {msg}")


def _options_of(options: dict[str, Any], kind: Kind) -> dict[str, Any]:
    if kind is KINDS["eval"]:
        return {k: v for k, v in options.items() if k != "models"}
    return options


def _parent(name, kind: Kind, given, seen, fail) -> str | None:
    """The folder of the run this stage starts from (`from:` a stage name, or the nearest
    earlier stage of a fitting kind)."""
    if not kind.parents:
        if given is not None:
            raise fail("takes no `from:`", "from")
        return None
    if given is not None:
        given = str(given)
        if given in seen:
            return seen[given][1]
        raise fail(
            f"from: {given!r} is not an earlier stage; earlier stages: {', '.join(seen) or 'none'}",
            "from",
        )
    for p in kind.parents:
        if p in seen:
            return seen[p][1]
    raise fail(f"needs a {' or '.join(kind.parents)} stage before it (or `from: STAGE`)")


def _steps(name, kind: Kind, folder, options, parent, world, seen) -> list[tuple[Step, dict]]:
    """The wired command(s) of one stage, each with the config fields the recipe sets (for
    the option check)."""
    ins = f"{world}/{WORLD_INSTRUCTIONS}" if world else ""
    prefs = f"{world}/{WORLD_PREFERENCES}" if world else ""
    user = dict(options)
    wired: dict[str, Any]
    if name == "world":
        wired = {"out": folder}
    elif name == "tokenizer":
        src = user.pop("input", None)
        if src is None and world is None:
            raise ConfigError("input", "give `input:` (text files or hf:NAME) or a world stage")
        src = src if src is not None else f"{world}/{WORLD_PRETRAIN}/train.txt"
        wired = {}
        argv = [*kind.verb, "--input", *_flag_value(src), "--out", folder, *to_flags(user)]
        return [_mk(name, kind, folder, argv, wired, done_file="tokenizer.json")]
    elif name == "shards":
        if "tokenizer" not in seen:
            raise ConfigError("tokenizer", "needs a `tokenizer` stage before it")
        if "input" not in user and world is None:
            raise ConfigError("input", "give `input:` (text files or hf:NAME) or a world stage")
        wired = {"tokenizer": seen["tokenizer"][1], "out": folder}
        if "input" not in user:
            wired["input"] = [f"{world}/{WORLD_PRETRAIN}"]
    elif name == "pretrain":
        if "shards" not in seen:
            raise ConfigError("data", "needs a `shards` stage before it")
        wired = {"data": seen["shards"][1], "out": folder}
    elif name == "sft":
        wired = {"init_from": parent, "data": [f"{ins}/train.jsonl"],
                 "val_data": [f"{ins}/val.jsonl"], "out": folder}  # fmt: skip
    elif name == "reward":
        wired = {"init_from": parent, "data": [f"{prefs}/train.jsonl"],
                 "val_data": [f"{prefs}/val.jsonl"], "out": folder}  # fmt: skip
    elif name == "reward_eval":
        argv = [*kind.verb, "--run", parent, "--data", f"{prefs}/val.jsonl", "--out", folder,
                *to_flags(user)]  # fmt: skip
        return [_mk(name, kind, folder, argv, {}, results_kind="lmforge eval reward")]
    elif name in ("rs", "ppo"):
        wired = {"init_from": parent, "prompts": [f"{ins}/train.jsonl"], "out": folder}
    else:  # eval: one `eval tasks` per model stage, then compare
        return _eval_steps(kind, folder, user, seen, ins)
    flags = to_flags({k: v for k, v in wired.items() if k not in user})
    argv = [*kind.verb, *flags, *to_flags(user)]
    done = "report.md" if kind.training else ("manifest.json" if name == "world" else "meta.json")
    return [_mk(name, kind, folder, argv, wired, done_file=done)]


def _mk(name, kind, folder, argv, wired, stage="", **kw) -> tuple[Step, dict]:
    return Step(name, stage or name, folder, argv, training=kind.training, **kw), wired


def _eval_steps(kind: Kind, folder: str, user: dict, seen, ins: str) -> list[Step]:
    models = user.pop("models", None)
    models = [m for m in MODEL_STAGES if m in seen] if models is None else list(models)
    if not models:
        raise ConfigError("models", "no model stage (pretrain, sft, rs, ppo) before it")
    for m in models:
        if m not in MODEL_STAGES or m not in seen:
            have = [x for x in MODEL_STAGES if x in seen]
            raise ConfigError("models", f"{m!r} is not an earlier model stage; have {have}")
    data = [f"{ins}/{f}" for f in TASK_FILES]
    steps, named = [], []
    for m in models:
        label = "base" if m == "pretrain" else m
        sub = f"{folder}_{label}"
        opts = dict(user)
        if m == "pretrain" and "template" not in opts:
            opts["template"] = False  # a base model answers plain prompts
        argv = [*kind.verb, "--run", seen[m][1], "--data", *data, "--out", sub, *to_flags(opts)]
        steps.append(
            _mk(f"eval_{label}", kind, sub, argv, {}, "eval", results_kind="lmforge eval tasks")
        )
        named.append((label, sub))
    cmp_argv = ["eval", "compare", *[f"{n}={f}" for n, f in named],
                "--plot", f"{folder}_compare.png"]  # fmt: skip
    cmp = Step("eval_compare", "eval", f"{folder}_compare.md", cmp_argv,
               done_file="", compare=named)  # fmt: skip
    return [*steps, (cmp, {})]
