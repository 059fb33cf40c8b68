"""The local backend: a transformers causal LM from the registry (an alias, ``run:ID`` or a model folder).

Prompts of a batch are sorted by length and left-padded, so that every row's next token sits in the last column:
``score`` is one forward pass per batch that keeps only the last position's logits, and ``generate`` is
transformers' KV-cached ``generate`` over the padded batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from seqrec.errors import SeqrecError
from seqrec.llm.backends.base import (
    Backend,
    CallFailure,
    Capabilities,
    ContextLengthError,
    Decoding,
    Generation,
    Prompt,
    Scores,
    TokenLogprob,
    check_labels,
    check_prompt,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` is bf16 where the device has native bf16 matmuls, else fp32."""
    from seqrec.llm.embed import bf16_supported

    if dtype not in DTYPES:
        raise SeqrecError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if bf16_supported() else "float16"
    return "bfloat16" if bf16_supported() else "float32"


def local_identity(record, dtype: str) -> str:
    """What a local model's answers depend on: its weights and the dtype it computes in (``dtype`` resolved)."""
    return f"{record.alias}@{record.sha256}/{dtype}"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LocalBackend(Backend):
    name = "local"

    def __init__(self, model: str, *, dtype: str = "auto", batch_size: int = 16, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from seqrec.llm.registry import model_record

        if batch_size < 1:
            raise SeqrecError(f"batch_size must be at least 1, not {batch_size}")
        self.record = model_record(model)
        self.device = device or default_device()
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        try:
            self.model = AutoModelForCausalLM.from_pretrained(self.record.path, dtype=getattr(torch, self.dtype))
        except ValueError as exc:
            raise SeqrecError(f"model {self.record.alias!r} is not a causal language model, so it cannot generate "
                              f"or score: {str(exc).splitlines()[0]}") from None
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.record.path)
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    @property
    def identity(self) -> str:
        return local_identity(self.record, self.dtype)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(generate=True, score=True, chat=bool(self.tokenizer.chat_template),
                            context_length=self.context_length)

    # prompts and labels as token ids ----------------------------------------------------------------------
    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Text is tokenized as given; chat messages go through the model's own chat template."""
        prompt = check_prompt(prompt)
        if isinstance(prompt, str):
            return self.tokenizer(prompt)["input_ids"]
        if not self.tokenizer.chat_template:
            raise SeqrecError(f"model {self.record.alias!r} has no chat template, so it cannot take chat messages; "
                              f"send a plain text prompt instead")
        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        if self.context_length and prompt_tokens + max_tokens > self.context_length:
            raise ContextLengthError(f"a prompt of {prompt_tokens} tokens plus max_tokens {max_tokens} is more than "
                                     f"the {self.context_length}-token context of {self.record.alias}")

    def label_id(self, label: str) -> int:
        ids = self.tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or self.tokenizer.decode(ids) != label:
            pieces = [self.tokenizer.decode([token]) for token in ids]
            raise SeqrecError(f"score label {label!r} is not one token of {self.record.alias} (it is {pieces}); "
                              f"choose labels that are single tokens")
        return ids[0]

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def padded(self, batch: list[list[int]]):
        """Left-padded ids, the attention mask, and positions that start at 0 at each row's first real token."""
        import torch

        width = max(map(len, batch))
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def chunks(self, encoded: list[list[int]]):
        """Batches of indices into ``encoded``, similar lengths together so that little is padding."""
        order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    # the two operations -----------------------------------------------------------------------------------
    def score(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[Scores | CallFailure]:
        import torch

        labels = check_labels(labels)
        label_ids = torch.tensor([self.label_id(label) for label in labels], device=self.device)
        encoded = [self.prompt_ids(prompt) for prompt in prompts]
        for ids in encoded:
            self.check_fits(len(ids), 1)
        results: list[Scores | CallFailure] = [None] * len(encoded)  # type: ignore[list-item]
        for chunk in self.chunks(encoded):
            started = time.perf_counter()
            input_ids, mask, positions = self.padded([encoded[index] for index in chunk])
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=1).logits[:, -1]
            chosen = torch.log_softmax(logits.float(), dim=-1)[:, label_ids].tolist()
            latency = (time.perf_counter() - started) / len(chunk)  # a batch's time, shared by its prompts
            for index, row in zip(chunk, chosen):
                results[index] = Scores(logprobs=dict(zip(labels, row)), prompt_tokens=len(encoded[index]),
                                        latency_s=latency)
        return results

    def generate(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[Generation | CallFailure]:
        encoded = [self.prompt_ids(prompt) for prompt in prompts]
        for ids in encoded:
            self.check_fits(len(ids), decoding.max_tokens)
        return self.generate_encoded(encoded, decoding)

    def generate_encoded(self, encoded: list[list[int]], decoding: Decoding) -> list[Generation]:
        """``generate`` for prompts already tokenized and checked against the context."""
        results: list[Generation] = [None] * len(encoded)  # type: ignore[list-item]
        for chunk in self.chunks(encoded):
            started = time.perf_counter()
            generations = self.generate_batch([encoded[index] for index in chunk], decoding)
            latency = (time.perf_counter() - started) / len(chunk)
            for index, generation in zip(chunk, generations):
                results[index] = replace(generation, latency_s=latency)
        return results

    def generate_batch(self, batch: list[list[int]], decoding: Decoding) -> list[Generation]:
        """One padded batch through ``generate``; a fixed seed makes sampling repeat for the same batch."""
        import torch
        from transformers import GenerationConfig

        input_ids, mask, _ = self.padded(batch)
        config = GenerationConfig(max_new_tokens=decoding.max_tokens, do_sample=not decoding.greedy,
                                  temperature=decoding.temperature if not decoding.greedy else None,
                                  top_p=decoding.top_p if not decoding.greedy else None, top_k=None,
                                  pad_token_id=self.pad_id, eos_token_id=sorted(self.eos_ids) or None,
                                  stop_strings=list(decoding.stop) or None, return_dict_in_generate=True,
                                  output_logits=decoding.logprobs is not None)
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config,
                                         tokenizer=self.tokenizer if decoding.stop else None)
        new_tokens = output.sequences[:, input_ids.shape[1]:].tolist()
        ends = self.eos_ids | {self.pad_id}
        generations = []
        for row, (prompt, tokens) in enumerate(zip(batch, new_tokens)):
            end = next((step for step, token in enumerate(tokens) if token in ends), len(tokens))
            finish = "stop" if end < len(tokens) else "length"
            tokens = tokens[:end]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((at for at in (text.find(stop) for stop in decoding.stop) if at >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            logprobs = None
            if decoding.logprobs is not None:
                logprobs = tuple(self.token_logprob(output.logits[step][row], token, decoding.logprobs)
                                 for step, token in enumerate(tokens))
            generations.append(Generation(text=text, finish_reason=finish, prompt_tokens=len(prompt),
                                          completion_tokens=len(tokens), tokens=logprobs))
        return generations

    def token_logprob(self, logits, token: int, top: int) -> TokenLogprob:
        """The model's own (untempered) log-probability of a generated token and of its ``top`` best rivals."""
        import torch

        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, ids = logprobs.topk(top) if top else (logprobs[:0], logprobs[:0].long())
        return TokenLogprob(token=self.token_text(token), logprob=float(logprobs[token]),
                            top={self.token_text(int(i)): float(v) for i, v in zip(ids, values)})

    def close(self) -> None:
        self.model = None
