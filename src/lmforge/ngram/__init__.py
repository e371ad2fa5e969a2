"""Count-based n-gram language models: counting, smoothing, ARPA, suggestions."""
