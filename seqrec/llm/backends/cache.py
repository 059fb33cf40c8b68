"""Every LLM call recorded in the store's ``llm_call`` table, and deterministic ones answered from it.

A call's key is (backend, model identity, hash of the rendered prompt or messages, hash of the operation and
its parameters). Only deterministic requests (greedy decoding, a fixed seed, and every score) are looked up; all
requests, failed ones included, are written as rows with their request, response, latency and token counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from seqrec.llm.backends.base import Backend, CallFailure, Decoding, Generation, Prompt, Scores, canonical, check_labels
from seqrec.store import LLMCall, Store, open_store


def digest(value) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


@dataclass
class CallCounts:
    """What a run records about its LLM calls."""

    hits: int = 0
    fresh: int = 0
    retries: int = 0
    failures: int = 0

    def as_metrics(self) -> dict[str, float]:
        return {"llm_cache_hits": self.hits, "llm_fresh_calls": self.fresh, "llm_retries": self.retries,
                "llm_failures": self.failures}


class CachedLLM:
    """A backend whose calls go through the ``llm_call`` table; ``no_cache`` sends every request afresh (and
    still records it)."""

    def __init__(self, backend: Backend, *, store: Store | None = None, no_cache: bool = False,
                 run_id: int | None = None):
        self.backend, self.no_cache, self.run_id = backend, no_cache, run_id
        self.store = store or open_store()
        self.counts = CallCounts()

    def log_counts(self, run) -> None:
        """Record the counts in a tracked run (an ``ActiveRun``) as its ``llm`` metrics."""
        run.log_metrics(self.counts.as_metrics(), split="llm")

    def generate(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[Generation | CallFailure]:
        params = {"operation": "generate", **decoding.as_dict()}
        return self.call(list(prompts), params, decoding.deterministic,
                         lambda todo: self.backend.generate(todo, decoding),
                         lambda row, payload: Generation.from_payload(payload, row.prompt_tokens or 0,
                                                                      row.completion_tokens or 0))

    def score(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[Scores | CallFailure]:
        labels = check_labels(labels)
        params = {"operation": "score", "labels": labels, **self.backend.score_options}
        return self.call(list(prompts), params, True, lambda todo: self.backend.score(todo, labels),
                         lambda row, payload: Scores.from_payload(payload, row.prompt_tokens or 0))

    def call(self, prompts: list[Prompt], params: dict, deterministic: bool, send, from_row) -> list:
        backend, model, params_hash = self.backend.name, self.backend.identity, digest(params)
        keys = [digest(prompt) for prompt in prompts]
        cacheable = deterministic and not self.no_cache
        found = self.store.cached_llm_calls(backend=backend, model=model, params_hash=params_hash,
                                            prompt_hashes=keys) if cacheable else {}
        results: list = [None] * len(prompts)
        pending: dict[str, list[int]] = {}  # a repeated deterministic prompt is sent once per batch
        for index, key in enumerate(keys):
            if key in found:
                row = found[key]
                results[index] = from_row(row, json.loads(row.response))
                self.counts.hits += 1
            elif cacheable:
                pending.setdefault(key, []).append(index)
            else:
                pending[f"{key}#{index}"] = [index]
        if not pending:
            return results
        firsts = [indices[0] for indices in pending.values()]
        answers = send([prompts[index] for index in firsts])
        rows = []
        for indices, answer in zip(pending.values(), answers):
            for index in indices:
                results[index] = answer
            self.counts.hits += len(indices) - 1
            self.counts.fresh += 1
            self.counts.retries += answer.attempts - 1
            rows.append(self.row(backend, model, keys[indices[0]], params_hash, prompts[indices[0]], params, answer))
            if isinstance(answer, CallFailure):
                self.counts.failures += 1
        self.store.add_llm_calls(rows)
        return results

    def row(self, backend: str, model: str, prompt_hash: str, params_hash: str, prompt: Prompt, params: dict,
            answer) -> LLMCall:
        failed = isinstance(answer, CallFailure)
        return LLMCall(run_id=self.run_id, backend=backend, model=model, prompt_hash=prompt_hash,
                       params_hash=params_hash, request={"prompt": prompt, "params": params,
                                                         "attempts": answer.attempts},
                       response=None if failed else json.dumps(answer.payload(), ensure_ascii=False),
                       latency_s=answer.latency_s, prompt_tokens=None if failed else answer.prompt_tokens,
                       completion_tokens=None if failed else getattr(answer, "completion_tokens", 0),
                       error=answer.error if failed else None)
