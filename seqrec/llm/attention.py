"""Attention switches for decoder LLMs: causal or bidirectional (LLM2Vec, LLM2Rec IEM), and attention dropout.

transformers 5 builds attention masks in ``transformers.masking_utils``: when ``config.is_causal`` is False,
``create_causal_mask`` returns ``create_bidirectional_mask`` instead, and each attention module's ``is_causal``
tells SDPA/flash kernels whether to apply their own causal triangle. Switching both turns a decoder into an
encoder without touching its weights.
"""

from __future__ import annotations

from seqrec.errors import SeqrecError
from seqrec.llm.configs import ATTENTIONS

BIDIRECTIONAL_FAMILIES = ("llama", "qwen2", "mistral", "gemma3_text")


def set_attention(model, attention: str) -> None:
    """Make a Llama/Qwen2/Mistral/Gemma-3 decoder attend causally or in both directions (in place, reversible)."""
    if attention not in ATTENTIONS:
        raise SeqrecError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
    model_type = model.config.model_type
    if attention == "bidirectional" and model_type not in BIDIRECTIONAL_FAMILIES:
        raise SeqrecError(f"bidirectional attention is supported for {', '.join(BIDIRECTIONAL_FAMILIES)} decoders, "
                          f"not {model_type!r}")
    causal = attention == "causal"
    model.config.is_causal = causal
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = causal


def set_attention_dropout(model, rate: float, path: str) -> None:
    """Dropout on the attention weights of every layer: what makes two encodings of one text differ (SimCSE's two
    views, L_IC). Decoders ship with it at 0; the saved model gets it back at 0 (``save_model_folder``)."""
    if not hasattr(model.config, "attention_dropout"):
        raise SeqrecError(f"{path}: the model has no attention dropout, which L_IC's two views need; "
                          "set its weight to 0")
    for holder in (model.config, *model.modules()):
        if hasattr(holder, "attention_dropout"):
            holder.attention_dropout = rate
