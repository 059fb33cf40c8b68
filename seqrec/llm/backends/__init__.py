"""LLM backends: one interface (``generate`` and ``score``) over a local model or an OpenAI-compatible endpoint,
and the call cache in the store. ``open_backend`` builds either from what a user or experiments.toml names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
)
from seqrec.llm.backends.cache import CachedLLM, CallCounts

__all__ = ["Backend", "CachedLLM", "CallCounts", "CallFailure", "Capabilities", "ContextLengthError", "Decoding",
           "Generation", "Prompt", "Scores", "TokenLogprob", "backend_from_endpoint", "open_backend"]

ENDPOINT_KEYS = ("base_url", "model", "api_key_env", "max_concurrency", "timeout", "max_retries", "capabilities",
                 "options")
ENDPOINT_OPTIONS = ("backoff", "max_backoff", "top_logprobs", "score_floor", "check")


def backend_from_endpoint(spec: Any, name: str = "endpoint") -> Backend:
    """An openai backend from an ``[endpoints.NAME]`` table (an EndpointSpec or a plain mapping of its keys)."""
    from seqrec.llm.backends.openai_api import OpenAIBackend

    fields = dict(spec) if isinstance(spec, Mapping) else spec.model_dump()
    unknown = set(fields) - set(ENDPOINT_KEYS)
    if unknown:
        raise SeqrecError(f"endpoints.{name}: unknown keys {sorted(unknown)}; known: {', '.join(ENDPOINT_KEYS)}")
    for key in ("base_url", "model"):
        if not fields.get(key):
            raise SeqrecError(f"endpoints.{name}: {key} is required")
    options = dict(fields.pop("options", None) or {})
    unknown = set(options) - set(ENDPOINT_OPTIONS)
    if unknown:
        raise SeqrecError(f"endpoints.{name}.options: unknown keys {sorted(unknown)}; "
                          f"known: {', '.join(ENDPOINT_OPTIONS)}")
    given = {key: value for key, value in fields.items() if value is not None}
    return OpenAIBackend(**given, **options)


def open_backend(model: str | None = None, *, endpoint: str | None = None, endpoint_model: str | None = None,
                 api_key_env: str | None = None, **options) -> Backend:
    """A local backend for a registry model (``--model``), or an openai backend for ``--endpoint URL
    --endpoint-model M``; exactly one of the two."""
    if (model is None) == (endpoint is None):
        raise SeqrecError("name either a model (--model ALIAS or run:ID) or an endpoint (--endpoint URL "
                          "--endpoint-model NAME), not both or neither")
    if endpoint is not None:
        if not endpoint_model:
            raise SeqrecError(f"--endpoint {endpoint} needs --endpoint-model: the model name the server serves")
        spec = {key: options.pop(key) for key in ENDPOINT_KEYS if key in options}
        return backend_from_endpoint({**spec, "base_url": endpoint, "model": endpoint_model,
                                      "api_key_env": api_key_env, "options": options})
    from seqrec.llm.backends.local import LocalBackend

    return LocalBackend(model, **options)
