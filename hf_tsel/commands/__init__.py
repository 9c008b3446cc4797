"""Sub-commands of the ``hf-tsel`` CLI; each public module defines ``register(subparsers)``.

The CLI imports every command module to build its parser, so these modules import the heavy parts
of the library (torch, pandas, datasets, gradio through ranking, metrics, results, publish, ...) inside
their ``run`` functions: ``hf-tsel --help`` and argument errors then answer at once.
"""
