"""Multi-turn dialogues whose last answer depends on an earlier turn.

Kinds: the user tells a fact about themselves and asks for it later
(`pet_name`, `user_name`, `user_city`), keeps a running count
(`running_total`), asks follow-ups about a person by pronoun (`follow_up`), or
asks to recall a word from a list (`list_recall`). Difficulty grows with the
number of unrelated exchanges in between (or with steps). Only the final
assistant turn is checked; its record carries `answer`/`answer_type`/`choices`.
"""

from __future__ import annotations

import random

from . import vocab
from .entities import World
from .grammar import a_an, capitalize, ordinal
from .problems import CHOICE, NUMBER
from .seeding import component_rng, problem_id, split_of

SYSTEM_PROMPT = "You are a helpful assistant."
KINDS = ("pet_name", "user_name", "user_city", "running_total", "follow_up", "list_recall")
USER_NAMES = vocab.FEMALE_NAMES + vocab.MALE_NAMES


def _filler(rng: random.Random, world: World) -> tuple[str, str]:
    """An unrelated exchange that only puts distance between the fact and the question."""
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        return f"By the way, what is {a} + {b}?", f"{a} + {b} = {a + b}."
    if kind == 1:
        p = rng.choice(world.people)
        return f"Do you know where {p.name} lives?", f"{p.name} lives in {p.city}."
    return rng.choice(
        (
            ("The weather is nice today.", "That sounds lovely!"),
            ("I had a long day at work.", "I hope you can rest now."),
            ("I am learning to cook.", "That is a great skill to learn."),
            ("Tell me something nice.", "Every day is a chance to learn something new."),
        )
    )


def _memory(rng: random.Random, world: World, kind: str, fillers: int):
    """pet_name / user_name / user_city: state a fact, chat, ask for it back."""
    if kind == "pet_name":
        pet, name = rng.choice(vocab.PETS), rng.choice(vocab.PET_NAMES)
        first = (f"My {pet} is called {name}.", f"{name} is a lovely name for {a_an(pet)}!")
        ask = rng.choice(
            (
                f"What is my {pet} called?",
                f"Do you remember my {pet}'s name?",
                f"What did I say my {pet}'s name was?",
            )
        )
        return first, fillers, ask, f"Your {pet} is called {name}.", name, vocab.PET_NAMES
    if kind == "user_name":
        name = rng.choice(USER_NAMES)
        first = (f"Hi! My name is {name}.", f"Nice to meet you, {name}!")
        ask = rng.choice(("What is my name?", "Do you remember what I am called?"))
        return first, fillers, ask, f"Your name is {name}.", name, USER_NAMES
    city = rng.choice(world.city_names)
    first = (f"I live in {city}.", f"{city} sounds like a nice place.")
    ask = rng.choice(("Which city do I live in?", "Where did I say I live?"))
    return first, fillers, ask, f"You live in {city}.", city, tuple(world.city_names)


def _turns(rng: random.Random, world: World, kind: str, difficulty: int):
    """(user/assistant pairs, final user message, final reply, answer, answer_type, choices)."""
    fillers = difficulty - 1
    if kind in ("pet_name", "user_name", "user_city"):
        first, n, ask, reply, answer, choices = _memory(rng, world, kind, fillers)
        pairs = [first] + [_filler(rng, world) for _ in range(n)]
        return pairs, ask, reply, answer, CHOICE, tuple(choices)
    if kind == "running_total":
        items = rng.choice(vocab.ITEMS)
        n = rng.randint(2, 12)
        pairs = [(f"I have {n} {items}.", f"Okay, you have {n} {items}.")]
        for _ in range(difficulty):
            if n > 1 and rng.random() < 0.5:
                k = rng.randint(1, n - 1)
                msg, n = rng.choice((f"I give {k} away.", f"I lose {k} of them.")), n - k
            else:
                k = rng.randint(1, 9)
                msg, n = rng.choice((f"I buy {k} more.", f"A friend gives me {k} more.")), n + k
            pairs.append((msg, "Okay, noted."))
        ask = f"How many {items} do I have now?"
        return pairs, ask, f"You have {n} {items}.", str(n), NUMBER, ()
    if kind == "follow_up":
        p = rng.choice(world.people)
        pairs = [(f"Where does {p.name} live?", f"{p.name} lives in {p.city}.")]
        if difficulty == 3:
            f = world.person(p.friend)
            pairs.append(
                (f"Who is {p.poss} best friend?", f"{capitalize(p.poss)} best friend is {f.name}.")
            )
            ask = f"And what pet does {p.poss} best friend have?"
            return pairs, ask, f"{f.name} has {a_an(f.pet)}.", f.pet, CHOICE, vocab.PETS
        if difficulty == 2:
            pairs.append((f"What does {p.pronoun} do for a living?", f"{p.name} is {a_an(p.job)}."))
        ask = rng.choice(
            (f"And what pet does {p.pronoun} have?", f"What kind of pet does {p.pronoun} keep?")
        )
        return pairs, ask, f"{p.name} has {a_an(p.pet)}.", p.pet, CHOICE, vocab.PETS
    # list_recall
    words = rng.sample(vocab.WORDS, k=2 + difficulty)
    pairs = [(f"Please remember these words: {', '.join(words)}.", "Okay, I will remember them.")]
    pairs += [_filler(rng, world) for _ in range(difficulty - 1)]
    i = rng.randrange(len(words))
    ask = f"What was the {ordinal(i + 1)} word?"
    return pairs, ask, f"The {ordinal(i + 1)} word was {words[i]}.", words[i], CHOICE, tuple(words)


def make_dialogue(rng: random.Random, world: World, kind: str, difficulty: int) -> dict:
    """One dialogue record (messages end with the checked assistant reply)."""
    pairs, ask, reply, answer, answer_type, choices = _turns(rng, world, kind, difficulty)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for user, assistant in pairs:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    messages.append({"role": "user", "content": ask})
    messages.append({"role": "assistant", "content": reply})
    record = {
        "messages": messages,
        "task": "dialogue",
        "subtask": kind,
        "template": f"dialogue/{kind}",
        "difficulty": difficulty,
        "answer": answer,
        "answer_type": answer_type,
    }
    if choices:
        record["choices"] = list(choices)
    return record


def dialogue_key(record: dict) -> str:
    """The identity of a dialogue: its user turns (the assistant's follow from them)."""
    return "\x1e".join(m["content"] for m in record["messages"] if m["role"] == "user")


def build_dialogues(
    world: World, seed: int, n_train: int, n_test: int, n_val: int = 0, stream: str = "dialogues"
) -> dict[str, list[dict]]:
    """Distinct dialogues for train, val and test; a dialogue's split comes from its key.

    The split of a key does not depend on the quotas, so asking for val
    dialogues leaves the train and test files as they were. `stream` names the
    random stream, so other files (preference pairs) can draw their own dialogues.
    """
    rng = component_rng(seed, stream)
    quotas = {"train": n_train, "val": n_val, "test": n_test}
    out: dict[str, list[dict]] = {split: [] for split in quotas}
    seen: set[str] = set()
    stale = 0
    while stale < 4000 and any(len(out[s]) < q for s, q in quotas.items()):
        record = make_dialogue(rng, world, rng.choice(KINDS), rng.choice((1, 2, 3)))
        key = dialogue_key(record)
        split = split_of(seed, "dialogue", key)
        if key in seen or len(out[split]) >= quotas[split]:
            stale += 1
            continue
        seen.add(key)
        stale = 0
        out[split].append({**record, "problem_id": problem_id("dialogue", key)})
    return out
