"""How a command names and calls its LLM, declared once: the flags of every command that calls one
(``training.options.cli_options(LLMOptions)``) and the Python API's ``llm_options``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

    def open(self, **local_options):
        """The backend: ``local_options`` (batch size, dtype) apply to a local model only."""
        from seqrec.llm.backends import open_backend

        if self.endpoint is None:
            return open_backend(self.llm, **local_options)
        settings = {key: value for key, value in asdict(self).items() if key in ENDPOINT_DEFAULTS}
        return open_backend(endpoint=self.endpoint, endpoint_model=self.endpoint_model,
                            api_key_env=self.api_key_env, **settings)
