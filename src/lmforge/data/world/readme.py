"""The README.md a world carries: what each file is and which families are held out."""

from __future__ import annotations

_FILES = (
    ("world.json", "the people, places and events"),
    ("manifest.json", "seed, counts, per-family templates and records, sha256 of every file"),
    ("pretrain/train.txt, val.txt", "pretraining text, documents separated by one blank line"),
    (
        "instructions/train.jsonl, val.jsonl, test.jsonl",
        "the seen task families through their seen templates",
    ),
    (
        "instructions/heldout_templates.jsonl",
        "the test problems again, through templates used nowhere else",
    ),
    (
        "instructions/heldout_tasks.jsonl",
        "the held-out families (never in train/val, preferences or pretraining text)",
    ),
    ("dialogues/train.jsonl, val.jsonl, test.jsonl", "multi-turn chats; the last reply is checked"),
    (
        "preferences/train.jsonl, val.jsonl",
        "chosen/rejected replies rated significantly/better/slightly/negligibly better "
        "(LLaMA-2), with graded scores; one in six multi-turn",
    ),
    (
        "preferences/rankings_train.jsonl, rankings_val.jsonl",
        "3-4 replies per prompt, best first, with graded scores",
    ),
    ("classification/{sentiment,topic}/", "balanced few-shot sets with labels.json"),
    (
        "long_range/train.jsonl, test.jsonl, candidates.json",
        "LAMBADA-style passages: the last word is stated only `distance` sentences back",
    ),
    ("trivia/train.jsonl, test.jsonl", "TriviaQA-style closed-book fact questions with aliases"),
)


def readme_text(seed: int, size: str, counts: dict[str, int], families: dict[str, dict]) -> str:
    """Markdown for the world folder; `families` is the manifest's families section."""
    heldout = [name for name, info in families.items() if info["heldout_task"]]
    lines = [
        f"# lmforge world (seed {seed}, size {size})",
        "",
        "Built by `lmforge world`; the same seed and counts (manifest.json) give byte-identical",
        "files. Formats and checkers: docs/world.md in lmforge. Splits never share a problem",
        "(records carry `problem_id`).",
        "",
        "## Files",
        "",
    ]
    lines += [f"- `{path}`: {what}" for path, what in _FILES]
    lines += [
        "",
        "## Task families",
        "",
        f"Held-out task families: {', '.join(heldout) if heldout else 'none'}.",
        f"A held-out family has up to {counts['test_per_family']} problems (the test quota) in",
        "heldout_tasks.jsonl and none anywhere a model trains on, so its accuracy measures",
        "generalisation to an unseen task. Families with CoT have two rows per problem",
        "(chain-of-thought and direct).",
        "",
        "| family | held out | CoT | difficulties | train | val | test "
        "| heldout_templates | heldout_tasks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, info in families.items():
        r = info["records"]
        lines.append(
            f"| {name} | {'yes' if info['heldout_task'] else 'no'} "
            f"| {'yes' if info['has_cot'] else 'no'} "
            f"| {', '.join(map(str, info['difficulties']))} | {r['train']} | {r['val']} "
            f"| {r['test']} | {r['heldout_templates']} | {r['heldout_tasks']} |"
        )
    return "\n".join(lines) + "\n"
