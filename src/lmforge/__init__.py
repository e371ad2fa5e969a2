"""lmforge: build every generation of language model end to end."""

__version__ = "0.1.0"
