"""Count-based n-gram language models: counting, smoothing, ARPA, scoring, suggestions.

    from lmforge.ngram import NgramConfig, train_ngram, load_model, suggest_next
    model = train_ngram(NgramConfig(order=3, smoothing="mkn"), ["corpus.txt"])
    model.save("m.npz")
    suggest_next(load_model("m.npz"), ["the", "king"], k=5)

Independent of the neural stack: numpy only (no torch).
"""

from .arpa import read_arpa, write_arpa
from .config import NgramConfig, SampleConfig, SuggestConfig
from .files import load_model, save_model
from .model import NgramModel
from .sample import detokenize, sample_sentence, sample_text
from .scoring import Scores, evaluate_files, score_sentences, sentence_logprob
from .suggest import complete, suggest_next
from .train import train_ngram
from .vocab import Vocab

__all__ = [
    "NgramConfig",
    "NgramModel",
    "SampleConfig",
    "Scores",
    "SuggestConfig",
    "Vocab",
    "complete",
    "detokenize",
    "evaluate_files",
    "load_model",
    "read_arpa",
    "sample_sentence",
    "sample_text",
    "save_model",
    "score_sentences",
    "sentence_logprob",
    "suggest_next",
    "train_ngram",
    "write_arpa",
]
