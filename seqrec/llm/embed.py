"""Item embeddings from text encoders and LLMs: one vector per item, from its title or a templated text.

The result is a float32 matrix ``[num_items + 1, dim]`` (row 0 is the padding item, all zeros) saved as an
``item-embeddings`` artifact of an ``embed`` run. The run's config names everything that determines the numbers
(model weights, dataset fingerprint, text template, pooling, attention, max length, dtype), so asking for the
same embedding twice finds the finished run and computes once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import jinja2
import numpy as np

from seqrec.errors import SeqrecError
from seqrec.llm.configs import POOLINGS, EmbedConfig
from seqrec.llm.prompts import template_environment
from seqrec.progress import counting
from seqrec.resources import resource_dir
from seqrec.store import open_store
from seqrec.training.options import check

ARTIFACT_KIND = "item-embeddings"


class EmbeddedItems(NamedTuple):
    run_id: int
    path: Path
    cached: bool


# item texts -----------------------------------------------------------------------------------------------
def compile_template(template: str) -> tuple[jinja2.Template, str]:
    """(compiled template, its source): a template string, a shipped template's name, or a template file."""
    if "{{" in template or "{%" in template:
        source, origin = template, "--template"
    else:
        path = Path(template)
        if not path.is_file():
            path = resource_dir("templates") / f"{template.removesuffix('.jinja')}.jinja"
        if not path.is_file():
            raise SeqrecError(f"no template {template!r}: give a file, a shipped template name or a Jinja string "
                              "such as '{{ title }} ({{ categories }})'")
        source, origin = path.read_text(), str(path)
    try:
        return template_environment().from_string(source), source
    except jinja2.TemplateSyntaxError as exc:
        raise SeqrecError(f"template {origin}, line {exc.lineno}: {exc.message}") from None


def item_texts(data, template: jinja2.Template | None) -> list[str]:
    """The text of items 1..N: the title, or the template rendered with the item's attributes."""
    if "title" not in data.items.columns:
        raise SeqrecError(f"dataset {data.name!r} has no item titles; embeddings need item text")
    if template is None:
        texts = [title.strip() for title in data.titles()[1:]]
    else:
        rows = {int(row["item"]): row for row in data.items.to_dict("records")}
        texts = []
        for item in range(1, data.num_items + 1):
            values = {key: value.tolist() if hasattr(value, "tolist") else value
                      for key, value in rows.get(item, {"item": item, "title": ""}).items()}
            try:
                texts.append(template.render(**values).strip())
            except jinja2.UndefinedError as exc:
                raise SeqrecError(f"template for item {item}: {exc.message} (item attributes: "
                                  f"{', '.join(data.items.columns)})") from None
    empty = [item for item, text in enumerate(texts, start=1) if not text]
    if len(empty) == len(texts):
        raise SeqrecError(f"dataset {data.name!r} has no item titles; embeddings need item text")
    if empty:
        raise SeqrecError(f"{len(empty)} of {len(texts)} items of {data.name!r} have no text (first: item "
                          f"{empty[0]}); prepare the dataset with --missing-titles drop or use a --template")
    return texts


# encoding -------------------------------------------------------------------------------------------------
def tokenize(tokenizer, texts: list[str], pooling: str, max_length: int) -> list[list[int]]:
    """Token ids per text, truncated; eos pooling appends the eos token and reads its hidden state."""
    if pooling == "eos":
        if tokenizer.eos_token_id is None:
            raise SeqrecError("this model's tokenizer has no eos token; use --pooling mean or last")
        ids = tokenizer(texts, truncation=True, max_length=max_length - 1)["input_ids"]
        return [row + [tokenizer.eos_token_id] for row in ids]
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def encode_batches(model, token_ids: list[list[int]], *, pad_id: int, pooling: str, batch_size: int,
                   progress=None) -> np.ndarray:
    """Pooled last hidden states, float32 ``[len(token_ids), dim]``. Texts are sorted by length and padded per
    batch (on the right, so pads never precede a real token), which keeps padding waste small."""
    import torch

    order = sorted(range(len(token_ids)), key=lambda index: len(token_ids[index]), reverse=True)
    device = next(model.parameters()).device
    result = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            lengths = torch.tensor([len(token_ids[index]) for index in batch])
            ids = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
            for row, index in enumerate(batch):
                ids[row, :lengths[row]] = torch.tensor(token_ids[index])
            mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
            pooled = pool(hidden, mask, lengths, pooling)
            if result is None:
                result = np.zeros((len(token_ids), pooled.shape[1]), dtype=np.float32)
            result[batch] = pooled.numpy()
            if progress is not None:
                progress(len(batch))
    return result


def pool(hidden, mask, lengths, pooling: str):
    """mean: average over real tokens; last / eos: the hidden state of the last real token."""
    import torch

    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)
    return hidden[torch.arange(hidden.shape[0]), lengths - 1]


def is_decoder(config) -> bool:
    """A model config, or a folder's config.json as a dict, that names a causal-LM architecture."""
    architectures = config.get("architectures") if isinstance(config, dict) else config.architectures
    return any(name.endswith("ForCausalLM") for name in architectures or [])


def bf16_supported() -> bool:
    """Native bf16 matmuls: a CUDA GPU that has them, or a CPU with AVX512-BF16 or AMX."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def prepare_encoder(path: str, attention: str, bf16: bool):
    """Load a model for embedding: hidden states only, no KV cache, the asked attention and dtype."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from seqrec.llm.attention import set_attention

    model = AutoModel.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    if model.config.is_encoder_decoder:
        model = model.get_encoder()
    model.config.use_cache = False
    if is_decoder(model.config):
        set_attention(model, attention)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.eval().to(device), AutoTokenizer.from_pretrained(path)


def pad_token_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return candidate


# the cached, tracked embedding -------------------------------------------------------------------------------
def check_embedding_options(**options) -> None:
    """Refuse a choice or a number outside what ``EmbedConfig`` declares."""
    check(options, [EmbedConfig], "embed items")


def resolve_embedding(model: str, dataset: str, pooling: str, attention: str | None, template: str | None,
                      max_length: int, bf16: bool):
    """(config, model record, compiled template): everything an embedding is identified by, found without
    loading the model or the dataset."""
    from seqrec.data.prepare import get_dataset
    from seqrec.llm.registry import model_record

    check_embedding_options(pooling=pooling, attention=attention, max_length=max_length)
    if bf16 and not bf16_supported():
        raise SeqrecError("--bf16 needs a CPU with AVX512-BF16/AMX or a GPU with bf16; this machine has neither")
    compiled, template_source = compile_template(template) if template else (None, None)
    dataset_row = get_dataset(dataset)
    record = model_record(model)
    # config.json read directly: importing transformers would cost a cached request seconds
    decoder = is_decoder(json.loads(Path(record.path, "config.json").read_text()))
    if not decoder and attention == "causal":
        raise SeqrecError(f"{model} is an encoder: its attention is always bidirectional")
    config = {"model": record.alias, "model_sha256": record.sha256, "model_revision": record.revision,
              "dataset": dataset, "dataset_fingerprint": dataset_row.fingerprint, "template": template_source,
              "pooling": pooling, "attention": attention or ("causal" if decoder else "bidirectional"),
              "max_length": max_length, "dtype": "bfloat16" if bf16 else "float32"}
    return config, record, compiled


def embedding_config(model: str, dataset: str, *, pooling: str = "mean", attention: str | None = None,
                     template: str | None = None, max_length: int = 64, bf16: bool = False) -> dict:
    """The fully resolved config of an embedding: its identity, hashed and looked up in the store."""
    return resolve_embedding(model, dataset, pooling, attention, template, max_length, bf16)[0]


def finished_embedding(config: dict) -> EmbeddedItems | None:
    """The finished embed run with this config whose matrix is still on disk."""
    found = open_store().finished_artifact(config, "embed", ARTIFACT_KIND)
    return None if found is None else EmbeddedItems(*found, cached=True)


def embed_items(model: str, dataset: str, *, pooling: str = "mean", attention: str | None = None,
                template: str | None = None, batch_size: int = 64, max_length: int = 64,
                bf16: bool = False) -> EmbeddedItems:
    """Embed every item of a prepared dataset with a model; reuse the artifact of an identical earlier run.

    ``attention`` defaults to causal for decoder LLMs (bidirectional turns them into LLM2Vec-style encoders) and
    is always bidirectional for encoders (BERT, e5, MiniLM, T5's encoder).
    """
    from seqrec.data.prepare import load_dataset

    check_embedding_options(batch_size=batch_size)
    config, record, compiled = resolve_embedding(model, dataset, pooling, attention, template, max_length, bf16)
    cached = finished_embedding(config)
    if cached is not None:
        return cached

    texts = item_texts(load_dataset(dataset), compiled)
    store = open_store()
    with store.start_run("embed", config, dataset=dataset) as run:
        encoder, tokenizer = prepare_encoder(record.path, config["attention"], bf16)
        token_ids = tokenize(tokenizer, texts, pooling, max_length)
        started = time.perf_counter()
        with counting(f"embedding {len(texts):,} items with {record.alias}", len(texts)) as advance:
            vectors = encode_batches(encoder, token_ids, pad_id=pad_token_id(tokenizer), pooling=pooling,
                                     batch_size=batch_size, progress=advance)
        seconds = time.perf_counter() - started
        matrix = np.vstack([np.zeros((1, vectors.shape[1]), dtype=np.float32), vectors])
        path = run.dir / "item_embeddings.npy"
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            np.save(handle, matrix)
        partial.rename(path)
        tokens = sum(map(len, token_ids))
        run.log_metrics({"items": len(texts), "dim": matrix.shape[1], "tokens": tokens, "seconds": seconds,
                         "tokens_per_s": tokens / max(seconds, 1e-9)}, split="embed")
        run.log_artifact(path, ARTIFACT_KIND, meta={
            "label": embedding_label(record.alias, pooling, config["attention"]), "shape": list(matrix.shape),
            "model": record.alias, "dataset": dataset})
    return EmbeddedItems(run.id, path, cached=False)


def embedding_label(model: str, pooling: str, attention: str) -> str:
    """How reports name a model's item embeddings, e.g. ``smollm2-135m-instruct mean/causal``."""
    return f"{model} {pooling}/{attention}"


