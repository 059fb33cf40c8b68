"""Low-rank adapters (peft) on an LLM, set up one way for every trainer."""

from __future__ import annotations

from torch import nn


def add_lora(model: nn.Module, rank: int, targets: str | list[str] = "all-linear", dropout: float = 0.0) -> nn.Module:
    """``model`` with LoRA adapters of ``rank`` on ``targets`` (alpha = 2 x rank); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets,
                                            lora_dropout=dropout))
