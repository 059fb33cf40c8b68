"""How a command names and calls its LLM, declared once: the flags of every command that calls one
(``training.options.cli_options(LLMOptions)``), what experiments.toml's ``model`` / ``[endpoints.X]`` resolve to
(``Plan.llm``), and what the methods take."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqrec.errors import SeqrecError
from seqrec.training.options import option

# an endpoint's client settings, as [endpoints.X] declares them (the schema and the backend share these defaults)
ENDPOINT_DEFAULTS = {"max_concurrency": 8, "timeout": 60.0, "max_retries": 4}


@dataclass
class LLMOptions:
    """A registry model or an OpenAI-compatible endpoint, its client's settings, and the call cache."""

    llm: str | None = option(None, "A registry model (alias or run:ID), e.g. smollm2-135m-instruct.")
    endpoint: str | None = option(None, "An OpenAI-compatible server's base URL, instead of --llm.")
    endpoint_model: str | None = option(None, "The model the endpoint serves.")
    api_key_env: str | None = option(None, "The environment variable that holds the endpoint's API key (the key "
                                     "itself is never stored).")
    max_concurrency: int = option(ENDPOINT_DEFAULTS["max_concurrency"], "Endpoint: requests in flight at once.",
                                  low=1)
    timeout: float = option(ENDPOINT_DEFAULTS["timeout"], "Endpoint: seconds to wait for one answer.", low=0.001)
    max_retries: int = option(ENDPOINT_DEFAULTS["max_retries"], "Endpoint: retries of a timed-out, rate-limited or "
                              "failed request.", low=0)
    no_cache: bool = option(False, "Send every LLM call afresh, even those the call cache could answer (each is "
                            "still recorded), and do not reuse an identical finished run.")
    # [endpoints.X] only: capability overrides and the client's other options (backoff, top_logprobs, ...)
    settings: dict = field(default_factory=dict)

    @classmethod
    def of(cls, llm: str | LLMOptions | None) -> LLMOptions:
        """``llm`` as options (a plain string names a registry model), checked: exactly one model or endpoint."""
        options = llm if isinstance(llm, LLMOptions) else cls(llm=llm)
        if (options.llm is None) == (options.endpoint is None):
            raise SeqrecError("name either a model (--llm ALIAS or run:ID) or an endpoint (--endpoint URL "
                              "--endpoint-model NAME), not both or neither")
        if options.endpoint is not None and not options.endpoint_model:
            raise SeqrecError(f"--endpoint {options.endpoint} needs --endpoint-model: the model name the server "
                              "serves")
        return options

    @property
    def backend_name(self) -> str:
        return "local" if self.endpoint is None else "openai"

    @property
    def name(self) -> str:
        """A short name for tables: the endpoint's served model, or the registry model's alias."""
        return self.endpoint_model if self.endpoint is not None else Path(self.record().alias).name

    def record(self):
        from seqrec.llm.registry import model_record

        return model_record(self.llm)

    def identity(self, dtype: str = "auto") -> str:
        """What the answers depend on besides the request, known without loading any weights: the weights and the
        dtype they compute in, or the endpoint and the model it serves (the call cache's model key)."""
        if self.endpoint is not None:
            from seqrec.llm.backends.openai_api import endpoint_identity

            return endpoint_identity(self.endpoint, self.endpoint_model)
        from seqrec.llm.backends.local import default_device, local_identity, resolve_dtype

        return local_identity(self.record(), resolve_dtype(dtype, default_device()))

    def open(self, **local_options):
        """The backend: ``local_options`` (batch size, dtype) apply to a local model only."""
        from seqrec.llm.backends import open_backend

        if self.endpoint is None:
            return open_backend(self.llm, **local_options)
        client = {key: value for key, value in asdict(self).items() if key in ENDPOINT_DEFAULTS}
        return open_backend(endpoint=self.endpoint, endpoint_model=self.endpoint_model,
                            api_key_env=self.api_key_env, **client, **self.settings)
