"""seqrec: a workbench for LLM-enhanced sequential recommendation."""

__version__ = "0.1.0"
