"""The one training harness: options declared once (``options``), accelerator setup (``accelerator``), the
Accelerate loop (``loop``), the run skeleton (``run``) and LoRA setup (``lora``).

Import from the submodules: ``options`` is light (no torch), so config dataclasses can be read without loading
the training stack.
"""
