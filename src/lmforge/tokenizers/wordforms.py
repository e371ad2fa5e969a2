"""Reduce word forms to a base form, the word tokenizer's answer to the word-form problem.

Two well-kept tools per language:

* `stem`: the Snowball stemmers (`snowballstemmer`), rule-based suffix stripping
  (English `running` -> `run`, `happy` -> `happi`; Russian `бежала` -> `бежа`);
* `lemma`: dictionary lemmatizers, `simplemma` for English (`went` -> `go`) and
  `pymorphy3` for Russian (`стали` -> `стать`).
"""

from __future__ import annotations

from collections.abc import Callable

SNOWBALL_NAMES = {"en": "english", "ru": "russian"}

Reducer = Callable[[list[str]], list[str]]


def base_form_reducer(method: str, language: str) -> Reducer | None:
    """A function mapping words to their base forms (None for method `none`).

    Words without a letter (punctuation, numbers) are kept as they are.
    """
    if method == "none":
        return None
    if method == "stem":
        reduce_words = _stemmer(language)
    elif method == "lemma":
        reduce_words = _lemmatizer(language)
    else:
        raise ValueError(f"unknown base-form method {method!r}")

    def reduce(words: list[str]) -> list[str]:
        wordy = [i for i, w in enumerate(words) if any(ch.isalpha() for ch in w)]
        bases = reduce_words([words[i] for i in wordy])
        out = list(words)
        for i, b in zip(wordy, bases):
            out[i] = b or words[i]
        return out

    return reduce


def _stemmer(language: str) -> Reducer:
    import snowballstemmer

    stemmer = snowballstemmer.stemmer(SNOWBALL_NAMES[language])
    return stemmer.stemWords


def _lemmatizer(language: str) -> Reducer:
    if language == "ru":
        import pymorphy3

        morph = pymorphy3.MorphAnalyzer()
        return lambda words: [morph.parse(w)[0].normal_form for w in words]
    import simplemma

    return lambda words: [simplemma.lemmatize(w, lang="en") for w in words]
