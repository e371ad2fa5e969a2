"""Balanced few-shot classification sets (sentiment, topic) with label words.

Rows are {"text", "label"}; every label has the same number of rows in each
split. A text's split comes from the same hash as the `sentiment`/`topic`
instruction families, so a classification test text never appears in any
train file. `labels.json` gives the label words and a prompt format for
few-shot prompting and calibration.
"""

from __future__ import annotations

from .entities import World
from .labelled_text import SENTIMENT_LABELS, TOPIC_LABELS, review, topic_sentence
from .seeding import component_rng, split_of

SETS = {
    "sentiment": {
        "labels": list(SENTIMENT_LABELS),
        "label_words": {label: label for label in SENTIMENT_LABELS},
        "instruction": "Classify the sentiment of each review as positive or negative.",
        "prompt": "Review: {text}\nSentiment: {label_word}",
        "generate": review,
    },
    "topic": {
        "labels": list(TOPIC_LABELS),
        "label_words": {label: label for label in TOPIC_LABELS},
        "instruction": "Classify the topic of each text as sports, food, weather or music.",
        "prompt": "Text: {text}\nTopic: {label_word}",
        "generate": topic_sentence,
    },
}


def labels_json(name: str) -> dict:
    """The labels.json content of a set (everything but the generator)."""
    return {"task": name, **{k: v for k, v in SETS[name].items() if k != "generate"}}


def build_classification(
    world: World, seed: int, train_per_label: int, test_per_label: int
) -> dict[str, dict[str, list[dict]]]:
    """{set name: {"train": rows, "test": rows}}, balanced and shuffled."""
    quotas = {"train": train_per_label, "test": test_per_label}
    out: dict[str, dict[str, list[dict]]] = {}
    for name, spec in SETS.items():
        rng = component_rng(seed, f"classification/{name}")
        by_label: dict[str, dict[str, list[str]]] = {}
        for label in spec["labels"]:
            got: dict[str, list[str]] = {"train": [], "test": []}
            seen: set[str] = set()
            stale = 0
            while stale < 4000 and any(len(got[s]) < q for s, q in quotas.items()):
                text = spec["generate"](rng, world, rng.choice((1, 2, 3)), label)
                split = split_of(seed, name, text)
                if text in seen or split not in got or len(got[split]) >= quotas[split]:
                    stale += 1
                    continue
                seen.add(text)
                stale = 0
                got[split].append(text)
            by_label[label] = got
        out[name] = {}
        for split in quotas:
            # Balanced: every label gets as many rows as the scarcest one has.
            n = min(len(by_label[label][split]) for label in spec["labels"])
            rows = [
                {"text": text, "label": label}
                for label in spec["labels"]
                for text in by_label[label][split][:n]
            ]
            rng.shuffle(rows)
            out[name][split] = rows
    return out
