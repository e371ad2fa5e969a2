"""lmforge.inference: KV cache, sampling and the generation engine (token ids only)."""

from ..models.kv_cache import KVCache
from .engine import Generation, generate, generate_full, sequence_logprobs, token_logprobs
from .sampling import SamplingConfig, pick_next, truncate_at_stop

__all__ = [
    "Generation",
    "KVCache",
    "SamplingConfig",
    "generate",
    "generate_full",
    "pick_next",
    "sequence_logprobs",
    "token_logprobs",
    "truncate_at_stop",
]
