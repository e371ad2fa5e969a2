"""Command-line verbs: argument parsing only; each verb calls a stage entry point.

Every module in this package that defines ``VERB`` and ``register(subparsers)``
becomes a verb of ``lmforge``; ``register`` must set ``func`` (called with the
parsed args) through ``parser.set_defaults(func=...)``. Heavy imports (torch)
belong inside the verb's function so that ``lmforge --help`` stays instant.
"""
