"""The one interface every LLM backend offers: ``generate`` text and ``score`` single-token labels.

A prompt is either plain text or a list of chat messages (``{"role": ..., "content": ...}``). Both operations
take a batch of prompts, so that a local model can pad them into one forward pass and a remote endpoint can
send them concurrently. A request that failed after its retries comes back as a :class:`CallFailure` in its
place in the batch: the caller must handle it, nothing is dropped silently.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from seqrec.errors import SeqrecError

Message = dict[str, str]
Prompt = str | list[Message]


class ContextLengthError(SeqrecError):
    """A prompt plus ``max_tokens`` does not fit the model's context window."""


@dataclass(frozen=True)
class Decoding:
    """How to decode; every field changes the answer, so all of them are part of a cached call's key."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # return each generated token's log-prob and this many alternatives

    def __post_init__(self):
        if self.max_tokens < 1:
            raise SeqrecError(f"max_tokens must be at least 1, not {self.max_tokens}")
        if self.temperature < 0:
            raise SeqrecError(f"temperature must be >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SeqrecError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise SeqrecError(f"logprobs (top alternatives) must be between 0 and 20, not {self.logprobs}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def deterministic(self) -> bool:
        """Greedy decoding or a fixed seed: the same request gives the same answer, so it may be cached."""
        return self.greedy or self.seed is not None

    def as_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int
    tokens: tuple[TokenLogprob, ...] | None = None  # only when Decoding.logprobs was asked for
    attempts: int = 1
    latency_s: float = field(default=0.0, compare=False)  # timing, not content

    def payload(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason,
                "tokens": None if self.tokens is None else [asdict(token) for token in self.tokens]}

    @classmethod
    def from_payload(cls, payload: dict, prompt_tokens: int, completion_tokens: int) -> Generation:
        tokens = payload.get("tokens")
        return cls(text=payload["text"], finish_reason=payload["finish_reason"], prompt_tokens=prompt_tokens,
                   completion_tokens=completion_tokens,
                   tokens=None if tokens is None else tuple(TokenLogprob(**token) for token in tokens))


@dataclass(frozen=True)
class Scores:
    """Log-probabilities of each label as the next token; ``missing`` labels were outside an endpoint's top-N
    and carry its floor score instead of a measured one."""

    logprobs: dict[str, float]
    prompt_tokens: int
    missing: tuple[str, ...] = ()
    attempts: int = 1
    latency_s: float = field(default=0.0, compare=False)  # timing, not content

    def payload(self) -> dict:
        return {"logprobs": self.logprobs, "missing": list(self.missing)}

    @classmethod
    def from_payload(cls, payload: dict, prompt_tokens: int) -> Scores:
        return cls(logprobs=payload["logprobs"], prompt_tokens=prompt_tokens, missing=tuple(payload["missing"]))

    def best(self) -> str:
        return max(self.logprobs, key=self.logprobs.get)


@dataclass(frozen=True)
class CallFailure:
    """A request that kept failing until its retries were spent (or failed in a way retrying cannot fix)."""

    error: str
    attempts: int
    status: int | None = None
    latency_s: float = field(default=0.0, compare=False)  # timing, not content


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; an endpoint's are detected (one probe) unless experiments.toml overrides them."""

    generate: bool = True
    score: bool = True
    chat: bool = True
    context_length: int | None = None


class Backend(ABC):
    """An LLM to call: a local model or an OpenAI-compatible endpoint."""

    name: str  # the backend kind, part of every cache key: "local" or "openai"

    @property
    @abstractmethod
    def identity(self) -> str:
        """What the answers depend on besides the request: weights (alias + sha256) or endpoint + served model."""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[Generation | CallFailure]: ...

    @abstractmethod
    def score(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[Scores | CallFailure]:
        """Log-probabilities of the single-token ``labels`` at the position after each prompt."""

    @property
    def score_options(self) -> dict:
        """Settings of this backend that change a score (an endpoint's top-N and floor): part of the cache key."""
        return {}

    def close(self) -> None:
        """Release what the backend holds (weights, connections)."""


def check_prompt(prompt: Prompt) -> Prompt:
    """Refuse anything that is neither text nor a list of role/content messages, naming what was wrong."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise SeqrecError(f"a prompt is a string or a non-empty list of chat messages, not {type(prompt).__name__}")
    for index, message in enumerate(prompt):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise SeqrecError(f"chat message {index} needs a string 'role' and a string 'content': {message!r}")
    return prompt


def check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if not labels or len(set(labels)) != len(labels) or not all(isinstance(label, str) and label for label in labels):
        raise SeqrecError(f"score labels must be distinct non-empty strings, got {labels!r}")
    return labels


def canonical(value) -> str:
    """The JSON form hashed for cache keys: key order and whitespace never change a key."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
