"""WorldConfig: the seed, the size preset, and counts that override the preset."""

from __future__ import annotations

from dataclasses import dataclass

from ...common import ConfigError
from ...config import field_
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES

# Preset counts per size. Instruction quotas are problems per family per split
# (families with reasoning give two examples each: CoT and direct); a held-out
# family gets test_per_family problems, all in heldout_tasks.jsonl.
SIZES: dict[str, dict[str, int]] = {
    "small": dict(
        people=60,
        places=12,
        events=20,
        pretrain_chars=1_500_000,
        train_per_family=600,
        val_per_family=60,
        test_per_family=150,
        dialogues_train=600,
        dialogues_val=60,
        dialogues_test=150,
        preferences_train=1500,
        preferences_val=200,
        rankings_train=500,
        rankings_val=100,
        classification_train_per_label=200,
        classification_test_per_label=100,
    ),
    "medium": dict(
        people=150,
        places=24,
        events=60,
        pretrain_chars=22_000_000,
        train_per_family=5000,
        val_per_family=300,
        test_per_family=500,
        dialogues_train=5000,
        dialogues_val=500,
        dialogues_test=500,
        preferences_train=10000,
        preferences_val=1000,
        rankings_train=3000,
        rankings_val=500,
        classification_train_per_label=1000,
        classification_test_per_label=250,
    ),
    "large": dict(
        people=400,
        places=40,
        events=150,
        pretrain_chars=110_000_000,
        train_per_family=25000,
        val_per_family=1000,
        test_per_family=1000,
        dialogues_train=20000,
        dialogues_val=1000,
        dialogues_test=1000,
        preferences_train=40000,
        preferences_val=2000,
        rankings_train=12000,
        rankings_val=1000,
        classification_train_per_label=5000,
        classification_test_per_label=500,
    ),
}
COUNT_FIELDS = tuple(SIZES["small"])


def _family_order(name: str) -> int:
    return list(FAMILIES).index(name) if name in FAMILIES else len(FAMILIES)


_FROM_SIZE = " (default: from --size)"


@dataclass
class WorldConfig:
    """Everything `build_world` needs; counts left as None come from `size`."""

    out: str = field_("", help="folder to write the world to (replaced atomically)")
    seed: int = field_(0, help="world seed; the same seed gives byte-identical files", min=0)
    size: str = field_("small", help="preset for all counts", choices=tuple(SIZES))
    force: bool = field_(False, help="replace OUT if it already holds a world")
    people: int | None = field_(None, help="people in the world" + _FROM_SIZE, min=4, max=600)
    places: int | None = field_(None, help="cities" + _FROM_SIZE, min=2, max=40)
    events: int | None = field_(None, help="events" + _FROM_SIZE, min=1, max=150)
    pretrain_chars: int | None = field_(
        None, help="characters of pretraining train text" + _FROM_SIZE, min=1000
    )
    train_per_family: int | None = field_(
        None, help="train problems per task family" + _FROM_SIZE, min=1
    )
    val_per_family: int | None = field_(None, help="val problems per family" + _FROM_SIZE, min=1)
    test_per_family: int | None = field_(
        None, help="test problems per family (also held-out-template rows)" + _FROM_SIZE, min=1
    )
    dialogues_train: int | None = field_(None, help="train dialogues" + _FROM_SIZE, min=1)
    dialogues_val: int | None = field_(None, help="val dialogues" + _FROM_SIZE, min=1)
    dialogues_test: int | None = field_(None, help="test dialogues" + _FROM_SIZE, min=1)
    preferences_train: int | None = field_(None, help="train preference pairs" + _FROM_SIZE, min=1)
    preferences_val: int | None = field_(None, help="val preference pairs" + _FROM_SIZE, min=1)
    rankings_train: int | None = field_(
        None, help="train rankings (3-4 replies per prompt)" + _FROM_SIZE, min=1
    )
    rankings_val: int | None = field_(None, help="val rankings" + _FROM_SIZE, min=1)
    classification_train_per_label: int | None = field_(
        None, help="classification train rows per label" + _FROM_SIZE, min=1
    )
    classification_test_per_label: int | None = field_(
        None, help="classification test rows per label" + _FROM_SIZE, min=1
    )
    heldout_tasks: list[str] | None = field_(
        None,
        help="task families kept out of training (written to instructions/heldout_tasks.jsonl "
        "only); 'none' holds out none (default: " + ", ".join(DEFAULT_HELDOUT_TASKS) + ")",
    )

    def validate(self) -> None:
        if not str(self.out).strip():
            raise ConfigError("out", "required: the folder to write the world to, e.g. --out world")
        names = self.heldout_families()
        unknown = [n for n in names if n not in FAMILIES]
        if unknown:
            raise ConfigError(
                "heldout_tasks",
                f"unknown family {unknown[0]!r}; families: {', '.join(FAMILIES)} (or 'none')",
            )
        if len(names) == len(FAMILIES):
            raise ConfigError("heldout_tasks", "holds out every family; leave one to train on")

    def heldout_families(self) -> tuple[str, ...]:
        """The held-out task families: the registry's default unless `heldout_tasks` is set."""
        if self.heldout_tasks is None:
            return DEFAULT_HELDOUT_TASKS
        # "--heldout-tasks a b" and "--heldout-tasks a,b" both name two families.
        names = [n.strip() for item in self.heldout_tasks for n in item.split(",") if n.strip()]
        if [n.lower() for n in names] == ["none"]:
            return ()
        # Registry order, so the same set always gives the same files.
        return tuple(dict.fromkeys(sorted(names, key=_family_order)))

    def counts(self) -> dict[str, int]:
        """Every count, the preset's value unless overridden."""
        preset = SIZES[self.size]
        return {
            name: preset[name] if getattr(self, name) is None else getattr(self, name)
            for name in COUNT_FIELDS
        }
