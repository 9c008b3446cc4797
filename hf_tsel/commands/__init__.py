"""Sub-commands of the ``hf-tsel`` CLI; each public module defines ``register(subparsers)``."""
