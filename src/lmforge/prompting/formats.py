"""The prompt formats of the shipped tasks: "Calibrate Before Use" first, alternatives after.

Format 0 of each reference set is the one of Zhao et al. (2021), Table 14 and its
code (``data_utils.py``): the same instruction, example template, label words and
a blank line between examples. The alternatives keep the data and labels and
change the wording, the answer prefix or the label words, for format-sensitivity
experiments (the paper's Figure 5 varies SST-2's format the same way). A world
set's format 0 is the one its ``labels.json`` gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..common import LmforgeError
from .tasks import ClassificationTask, Example, PromptFormat, _word_lists

# label names of the reference sets, in column order
SHARED_LABELS = {
    "sst2": ["negative", "positive"],
    "agnews": ["World", "Sports", "Business", "Sci/Tech"],
    "trec": ["NUM", "LOC", "HUM", "DESC", "ENTY", "ABBR"],
    "rte": ["not_entailment", "entailment"],
    "cb": ["contradiction", "neutral", "entailment"],
}

SHARED_WORDS: dict[str, dict[str, list[str]]] = {
    "sst2": {"negative": ["Negative"], "positive": ["Positive"]},
    # The paper scores Sci/Tech by both of its names.
    "agnews": {
        "World": ["World"],
        "Sports": ["Sports"],
        "Business": ["Business"],
        "Sci/Tech": ["Technology", "Science"],
    },
    "trec": {
        "NUM": ["Number"],
        "LOC": ["Location"],
        "HUM": ["Person"],
        "DESC": ["Description"],
        "ENTY": ["Entity"],
        "ABBR": ["Abbreviation"],
    },
    "rte": {"not_entailment": ["False"], "entailment": ["True"]},
    "cb": {"contradiction": ["false"], "neutral": ["neither"], "entailment": ["true"]},
}

_AG_INSTRUCTION = (
    "Classify the news articles into the categories of World, Sports, Business, and Technology."
)
_TREC_INSTRUCTION = (
    "Classify the questions based on whether their answer type is a Number, Location, "
    "Person, Description, Entity, or Abbreviation."
)

SHARED_FORMATS: dict[str, tuple[PromptFormat, ...]] = {
    "sst2": (
        PromptFormat("cbu", "Review: {text}\nSentiment:"),
        PromptFormat("answer", "Review: {text}\nAnswer:"),
        PromptFormat(
            "critics",
            "My review for last night's film: {text} The critics agreed that this movie was",
            label_words={"negative": ["bad"], "positive": ["good"]},
            label_suffix=".",
        ),
        PromptFormat(
            "question",
            "Input: {text}\nQuestion: Is this review positive or negative?\nAnswer:",
            label_words={"negative": ["negative"], "positive": ["positive"]},
        ),
        PromptFormat(
            "instruction",
            "Review: {text}\nSentiment:",
            instruction="Classify the sentiment of each movie review as Positive or Negative.",
        ),
    ),
    "agnews": (
        PromptFormat("cbu", "Article: {text}\nAnswer:", instruction=_AG_INSTRUCTION),
        PromptFormat("no_instruction", "Article: {text}\nAnswer:"),
        PromptFormat("topic", "News: {text}\nTopic:"),
        PromptFormat(
            "question",
            "{text}\nQuestion: Is this article about World, Sports, Business or Technology?"
            "\nAnswer:",
        ),
    ),
    "trec": (
        PromptFormat("cbu", "Question: {text}\nAnswer Type:", instruction=_TREC_INSTRUCTION),
        PromptFormat("no_instruction", "Question: {text}\nAnswer Type:"),
        PromptFormat("type", "Q: {text}\nType:"),
    ),
    "rte": (
        PromptFormat("cbu", "{premise}\nquestion: {hypothesis} True or False?\nanswer:"),
        PromptFormat(
            "yes_no",
            '{premise}\nQuestion: Does this mean that "{hypothesis}" is true? Yes or No?\nAnswer:',
            label_words={"not_entailment": ["No"], "entailment": ["Yes"]},
        ),
        PromptFormat(
            "lower",
            "{premise}\nquestion: {hypothesis} true or false?\nanswer:",
            label_words={"not_entailment": ["false"], "entailment": ["true"]},
        ),
    ),
    "cb": (
        PromptFormat("cbu", "{premise}\nquestion: {hypothesis}. true, false, or neither?\nanswer:"),
        PromptFormat(
            "yes_no_maybe",
            '{premise}\nQuestion: Is "{hypothesis}" true? Yes, No, or Maybe?\nAnswer:',
            label_words={"contradiction": ["No"], "neutral": ["Maybe"], "entailment": ["Yes"]},
        ),
    ),
}

# Alternatives for the world sets, after the format of their labels.json.
WORLD_ALTERNATIVES: dict[str, tuple[PromptFormat, ...]] = {
    "sentiment": (
        PromptFormat("answer", "Review: {text}\nAnswer:"),
        PromptFormat("input_output", "Input: {text}\nOutput:"),
        PromptFormat("question", "{text}\nQuestion: Is this review positive or negative?\nAnswer:"),
        PromptFormat("no_instruction", "Review: {text}\nSentiment:"),
    ),
    "topic": (
        PromptFormat("answer", "Text: {text}\nAnswer:"),
        PromptFormat("input_output", "Input: {text}\nOutput:"),
        PromptFormat(
            "question", "{text}\nQuestion: Is this about sports, food, weather or music?\nAnswer:"
        ),
        PromptFormat("no_instruction", "Text: {text}\nTopic:"),
    ),
}


def format_from_prompt(name: str, prompt: str, instruction: str = "") -> PromptFormat:
    """A format from a one-line prompt with a ``{label_word}`` slot (a world's labels.json).

    ``"Review: {text}\\nSentiment: {label_word}"`` gives the template ``"Review:
    {text}\\nSentiment:"``, label separator ``" "`` and no suffix.
    """
    if prompt.count("{label_word}") != 1:
        raise LmforgeError(
            f"prompt {prompt!r}: needs exactly one {{label_word}} slot, where the label goes"
        )
    before, after = prompt.split("{label_word}")
    template = before.rstrip(" ")
    return PromptFormat(
        name,
        template,
        instruction=instruction,
        label_sep=before[len(template) :],
        label_suffix=after,
    )


def world_task(
    name: str, meta: Mapping[str, Any], train: list[Example], test: list[Example], source: str
) -> ClassificationTask:
    """A world set as a task: labels.json's format first, then `WORLD_ALTERNATIVES`."""
    labels = [str(x) for x in meta["labels"]]
    instruction = str(meta.get("instruction") or "")
    first = format_from_prompt("world", str(meta["prompt"]), instruction)
    alts = tuple(
        f if f.name == "no_instruction" else _with_instruction(f, instruction)
        for f in WORLD_ALTERNATIVES.get(name, ())
    )
    words = _word_lists(meta.get("label_words") or {x: x for x in labels}, labels, source)
    return ClassificationTask(
        name=name,
        labels=labels,
        label_words=words,
        train=train,
        test=test,
        format=first,
        formats=(first, *alts),
        source=source,
    )


def _with_instruction(f: PromptFormat, instruction: str) -> PromptFormat:
    return dataclasses.replace(f, instruction=instruction)


def shared_task(
    name: str, train: list[Example], test: list[Example], source: str
) -> ClassificationTask:
    """A reference set as a task in its "Calibrate Before Use" format (and alternatives)."""
    formats = SHARED_FORMATS[name]
    return ClassificationTask(
        name=name,
        labels=list(SHARED_LABELS[name]),
        label_words={k: list(v) for k, v in SHARED_WORDS[name].items()},
        train=train,
        test=test,
        format=formats[0],
        formats=formats,
        source=source,
    )
