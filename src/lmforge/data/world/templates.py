"""Prompt templates per task family (FLAN / T0 style): several seen, some held out.

`TEMPLATES[family][subtask]` is a pair (train templates, held-out templates);
subtask "*" serves every subtask of the family. Held-out templates never
appear in the train, val or test files, only in `heldout_templates.jsonl`, so a
model's ability to follow an unseen phrasing can be measured on the same
problems as the test split. (Held-out *families* render through their seen
templates into `heldout_tasks.jsonl`: the whole family is new to the model.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    id: str  # "arithmetic/t1", "facts/city/h1"
    text: str  # str.format over the problem's fields
    heldout: bool

    def render(self, fields: dict[str, str]) -> str:
        return self.text.format(**fields)


_RAW: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "arithmetic": {
        "*": (
            (
                "What is {a} {sym} {b}?",
                "Calculate {a} {sym} {b}.",
                "Compute {a} {op_word} {b}.",
                "{a} {op_word} {b} equals what?",
            ),
            (
                "Work out the value of {a} {sym} {b} and reply with the number.",
                "Q: {a} {sym} {b} = ?",
            ),
        ),
    },
    "word_problem": {
        "*": (
            (
                "{story} {question}",
                "Solve this word problem.\n{story} {question}",
                "Here is a short problem: {story} {question}",
            ),
            ("Read the story and answer the question.\nStory: {story}\nQuestion: {question}",),
        ),
    },
    "multi_step": {
        "expression": (
            (
                "Compute {expr}.",
                "What is {expr}?",
                "Calculate the value of {expr}.",
            ),
            ("Evaluate the expression {expr} and give the result.",),
        ),
        "chain": (
            (
                "Start with {start}, {steps}. What number do you get?",
                "Take the number {start}. {step_sentences} What is the result?",
                "Begin with {start}. Then {steps}. Which number do you end up with?",
            ),
            ("I think of the number {start}. I {steps}. What number do I have now?",),
        ),
    },
    "fact_chain": {
        "*": (
            (
                "{question}",
                "Answer this question about the people in the world: {question}",
                "Question: {question}",
            ),
            ("Use what you know about the world to answer this. {question}",),
        ),
    },
    "facts": {
        "city": (
            (
                "Where does {name} live?",
                "In which city does {name} live?",
                "What city is {name}'s home?",
            ),
            ("Tell me the name of the town where {name} lives.",),
        ),
        "pet": (
            (
                "What kind of pet does {name} have?",
                "What animal does {name} keep as a pet?",
                "{name} has a pet. What kind of animal is it?",
            ),
            ("Which animal lives with {name}?",),
        ),
        "job": (
            (
                "What does {name} do for a living?",
                "What is {name}'s job?",
                "What work does {name} do?",
            ),
            ("Which profession does {name} have?",),
        ),
        "food": (
            (
                "What is {name}'s favourite food?",
                "Which food does {name} like best?",
                "What does {name} love to eat most?",
            ),
            ("Name the food that {name} likes most.",),
        ),
        "pet_name": (
            (
                "What is the name of {name}'s {pet}?",
                "What is {name}'s {pet} called?",
                "What did {name} name {poss} {pet}?",
            ),
            ("{name} owns a {pet}. What is its name?",),
        ),
        "age": (
            ("How old is {name}?", "What is {name}'s age?", "How many years old is {name}?"),
            ("Tell me the age of {name}.",),
        ),
        "friend": (
            (
                "Who is {name}'s best friend?",
                "What is the name of {name}'s best friend?",
                "Who is the best friend of {name}?",
            ),
            ("Name the person {name} is closest friends with.",),
        ),
        "event_city": (
            (
                "Where was {event} held?",
                "In which city did {event} take place?",
                "Which city hosted {event}?",
            ),
            ("Name the city of {event}.",),
        ),
        "event_year": (
            (
                "In what year was {event}?",
                "When did {event} take place? Give the year.",
                "Which year did {event} happen?",
            ),
            ("Tell me the year of {event}.",),
        ),
        "owner_city": (
            (
                "Where does the owner of {pet_name} live?",
                "{pet_name} is a pet. In which city does its owner live?",
                "Which city is the owner of {pet_name} from?",
            ),
            ("Name the city where the person who owns {pet_name} lives.",),
        ),
        "friend_pet": (
            (
                "What kind of pet does {name}'s best friend have?",
                "{name}'s best friend owns a pet. What kind of animal is it?",
                "Which animal does the best friend of {name} keep?",
            ),
            ("Think of {name}'s best friend. What pet do they have?",),
        ),
    },
    "counting": {
        "letters": (
            (
                "How many times does the letter '{letter}' appear in '{word}'?",
                "Count the letter '{letter}' in the word '{word}'.",
                "In the word '{word}', how many '{letter}' letters are there?",
            ),
            ("Tell me how often '{letter}' occurs in '{word}'.",),
        ),
        "words": (
            (
                "How many words are in this sentence: {sentence}",
                "Count the words: {sentence}",
                "{sentence}\nHow many words is that?",
            ),
            ("Give the number of words in the following text: {sentence}",),
        ),
        "items": (
            (
                "How many times does '{item}' appear in this list: {items}?",
                "Count how often '{item}' occurs: {items}",
                "List: {items}\nHow many of them are '{item}'?",
            ),
            ("In the list {items}, count the '{item}' entries.",),
        ),
    },
    "reversing": {
        "words": (
            (
                "Reverse the order of these words: {items}",
                "Write these words in reverse order: {items}",
                "{items}\nList them backwards.",
            ),
            ("Turn this list around so the last word comes first: {items}",),
        ),
        "letters": (
            (
                "Spell the word '{word}' backwards.",
                "Reverse the letters of '{word}'.",
                "Write '{word}' from right to left.",
            ),
            ("What is '{word}' when its letters are read in reverse?",),
        ),
    },
    "sorting": {
        "ascending": (
            (
                "Sort these numbers from smallest to largest: {items}",
                "Put in ascending order: {items}",
                "{items}\nArrange these numbers from low to high.",
            ),
            ("Order the following numbers, smallest first: {items}",),
        ),
        "descending": (
            (
                "Sort these numbers from largest to smallest: {items}",
                "Put in descending order: {items}",
                "{items}\nArrange these numbers from high to low.",
            ),
            ("Order the following numbers, largest first: {items}",),
        ),
        "words": (
            (
                "Sort these words alphabetically: {items}",
                "Put these words in alphabetical order: {items}",
                "{items}\nArrange the words from A to Z.",
            ),
            ("Order the following words as they would appear in a dictionary: {items}",),
        ),
    },
    "comparing": {
        "larger": (
            (
                "Which number is larger, {a} or {b}?",
                "Which is bigger: {a} or {b}?",
                "{a} or {b}: which is greater?",
            ),
            ("Of the numbers {a} and {b}, name the greater one.",),
        ),
        "smaller": (
            (
                "Which number is smaller, {a} or {b}?",
                "Which is less: {a} or {b}?",
                "{a} or {b}: which is lower?",
            ),
            ("Of the numbers {a} and {b}, name the smaller one.",),
        ),
        "longer": (
            (
                "Which word is longer, {a} or {b}?",
                "Which word has more letters: {a} or {b}?",
                "{a} or {b}: which word is longer?",
            ),
            ("Of the words {a} and {b}, name the longer one.",),
        ),
        "older": (
            (
                "Who is older, {a} or {b}?",
                "Which person is older: {a} or {b}?",
                "{a} or {b}: who was born first?",
            ),
            ("Of {a} and {b}, name the older person.",),
        ),
    },
    "sentiment": {
        "*": (
            (
                "Is this review positive or negative?\n{text}",
                "Review: {text}\nWhat is the sentiment of this review?",
                "{text}\nDid the writer like it? Answer positive or negative.",
            ),
            ("Classify the sentiment (positive or negative) of: {text}",),
        ),
    },
    "topic": {
        "*": (
            (
                "What is this text about: sports, food, weather or music?\n{text}",
                "Text: {text}\nTopic (sports, food, weather, music):",
                "{text}\nWhich topic is this: sports, food, weather or music?",
            ),
            ("Pick the subject of the text from sports, food, weather and music: {text}",),
        ),
    },
}

# Appended to the prompts of families with reasoning (word problems, multi-step
# arithmetic, fact chains): the chain-of-thought and the direct variant, the
# latter worded for the answer type.
COT_INSTRUCTION = "Let's think step by step."
DIRECT_INSTRUCTIONS = {
    "number": "Reply with just the number.",
    "choice": "Reply with just the answer.",
    "sequence": "Reply with just the list.",
}


def _build() -> dict[str, dict[str, tuple[tuple[Template, ...], tuple[Template, ...]]]]:
    out: dict[str, dict[str, tuple[tuple[Template, ...], tuple[Template, ...]]]] = {}
    for family, subs in _RAW.items():
        out[family] = {}
        for sub, (seen, held) in subs.items():
            prefix = family if sub == "*" else f"{family}/{sub}"
            out[family][sub] = (
                tuple(Template(f"{prefix}/t{i}", t, False) for i, t in enumerate(seen, 1)),
                tuple(Template(f"{prefix}/h{i}", t, True) for i, t in enumerate(held, 1)),
            )
    return out


TEMPLATES = _build()


def templates_for(family: str, subtask: str, heldout: bool) -> tuple[Template, ...]:
    """The seen (or held-out) templates that can render a problem of family/subtask."""
    subs = TEMPLATES[family]
    seen, held = subs[subtask] if subtask in subs else subs["*"]
    return held if heldout else seen
