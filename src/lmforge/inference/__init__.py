"""lmforge.inference: KV cache, sampling and the generation engine (token ids only)."""

from ..models.kv_cache import KVCache
from .engine import (
    Generation,
    StreamEvent,
    default_stop_ids,
    generate,
    generate_full,
    per_prompt,
    row_seeds,
    sequence_logprobs,
    stream_generate,
    token_logprobs,
)
from .sampling import SamplingConfig, pick_next, truncate_at_stop

__all__ = [
    "Generation",
    "KVCache",
    "SamplingConfig",
    "StreamEvent",
    "default_stop_ids",
    "generate",
    "generate_full",
    "per_prompt",
    "pick_next",
    "row_seeds",
    "sequence_logprobs",
    "stream_generate",
    "token_logprobs",
    "truncate_at_stop",
]
