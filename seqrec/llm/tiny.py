"""Tiny decoder LLMs built from a config, with a tokenizer trained offline on a few hundred strings.

They have the real architectures (Llama, Qwen2) and save as ordinary Hugging Face folders, so every code path
that loads, embeds or trains a model runs in seconds on 2 CPU cores without downloading anything.
"""

from __future__ import annotations

import random
from pathlib import Path

from seqrec.errors import SeqrecError

FAMILIES = ("llama", "qwen2")
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
WORDS = ("the a of and in star wars story toy return last night day man woman love war city dark light king "
         "game house blue red life world time lost secret party dead movie music best little big new old "
         "american summer winter journey home music lady house road escape ghost river dream").split()


def training_strings(count: int = 400, seed: int = 0) -> list[str]:
    """Title-like strings ("Dark River Story (1994)") that teach the tokenizer words, digits and brackets."""
    rng = random.Random(seed)
    strings = []
    for _ in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))).title()
        strings.append(f"{words} ({rng.randint(1920, 2024)})")
    return strings


def build_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer: every string encodes (no unknown tokens), the vocabulary stays small."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(training_strings(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def build_tiny_model(folder: Path, family: str = "llama", *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised ``family`` causal LM with its tokenizer into ``folder``; returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    if family not in FAMILIES:
        raise SeqrecError(f"no tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    tokenizer = build_tokenizer()
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[family]
    config = config_class(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=256, tie_word_embeddings=True,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
