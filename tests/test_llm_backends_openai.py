"""The openai backend against a real scripted HTTP server on 127.0.0.1: retries, limits, faults, bad endpoints."""

import time

import pytest
from llm_servers import scripted_server

from seqrec.errors import SeqrecError
from seqrec.llm.backends import CallFailure, Decoding, Generation, backend_from_endpoint, open_backend
from seqrec.llm.backends.openai_api import OpenAIBackend

HI = [{"role": "user", "content": "hi"}]


def endpoint(server, **options):
    options.setdefault("backoff", 0.01)
    options.setdefault("timeout", 5.0)
    return OpenAIBackend(server.url, "m", **options)


@pytest.mark.parametrize("fault", [("status", 429), ("status", 500), ("status", 503), ("status", 408),
                                   ("status", 409), ("not-json",), ("broken-json",), ("no-choices",)])
def test_a_passing_fault_is_retried_and_the_retry_counted(fault):
    with scripted_server([fault]) as server:
        result = endpoint(server).generate([HI], Decoding(max_tokens=4))[0]
        assert isinstance(result, Generation) and result.text == "ok"
        assert result.attempts == 2 and len(server.requests) == 2


def test_a_stalled_request_times_out_and_is_retried():
    with scripted_server([("stall", 2.0)]) as server:
        result = endpoint(server, timeout=0.5).generate([HI], Decoding())[0]
        assert result.text == "ok" and result.attempts == 2


def test_retry_after_is_honoured():
    with scripted_server([("status", 429, {"Retry-After": "0.6"})]) as server:
        started = time.perf_counter()
        result = endpoint(server).generate([HI], Decoding())[0]
        assert result.attempts == 2 and time.perf_counter() - started >= 0.6


def test_once_retries_are_spent_the_call_is_a_typed_failure_in_its_place():
    with scripted_server([("status", 500)] * 3) as server:
        backend = endpoint(server, max_retries=2)
        failure = backend.generate([HI], Decoding())[0]
        assert isinstance(failure, CallFailure) and failure.attempts == 3 and failure.status == 500
        assert "500" in failure.error and len(server.requests) == 3
        assert isinstance(backend.generate([HI], Decoding())[0], Generation)


def test_a_request_the_server_rejects_is_not_retried():
    with scripted_server([("status", 400)]) as server:
        result = endpoint(server).generate([HI], Decoding())[0]
        assert isinstance(result, CallFailure) and result.attempts == 1 and result.status == 400
        assert len(server.requests) == 1


def test_no_more_than_max_concurrency_requests_are_in_flight():
    with scripted_server(delay=0.2) as server:
        started = time.perf_counter()
        results = endpoint(server, max_concurrency=4).generate([HI] * 8, Decoding())
        elapsed = time.perf_counter() - started
        assert all(isinstance(result, Generation) for result in results)
        assert server.peak == 4 and 0.4 <= elapsed < 1.2


def test_text_prompts_use_completions_and_messages_use_chat():
    with scripted_server() as server:
        backend = endpoint(server)
        backend.generate([HI], Decoding(max_tokens=3, seed=5, stop=("\n",)))
        assert server.requests[-1]["messages"] == HI and server.requests[-1]["seed"] == 5
        assert server.requests[-1]["stop"] == ["\n"] and server.requests[-1]["max_tokens"] == 3


def test_score_reads_top_logprobs_and_floors_labels_outside_them():
    with scripted_server([("ok", "A", {"A": -0.1, "B": -2.5})], ) as server:
        backend = endpoint(server, capabilities={"score": True})
        scores = backend.score([HI], ["A", "B", "C"])[0]
        assert scores.logprobs == {"A": -0.1, "B": -2.5, "C": backend.score_floor}
        assert scores.missing == ("C",) and scores.best() == "A"
        assert server.requests[-1]["logprobs"] is True and server.requests[-1]["max_tokens"] == 1


def test_one_probe_tells_whether_the_endpoint_returns_logprobs():
    with scripted_server([("ok", "A", {"A": -0.1})]) as server:
        assert endpoint(server).capabilities.score
    with scripted_server() as server:  # answers without logprobs
        backend = endpoint(server)
        assert not backend.capabilities.score
        with pytest.raises(SeqrecError, match="does not return log-probabilities"):
            backend.score([HI], ["A"])
        assert len(server.requests) == 2  # the chat probe and the completions probe, once
        assert not backend.capabilities.score and len(server.requests) == 2


def test_an_unreachable_endpoint_is_one_clear_error():
    with scripted_server() as server:
        url = server.url
    with pytest.raises(SeqrecError, match="cannot reach the endpoint"):
        OpenAIBackend(url, "m", backoff=0.01, max_retries=1)


def test_a_refused_api_key_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "wrong")
    with scripted_server(auth="right") as server, \
            pytest.raises(SeqrecError, match=r"refused the API key \(401\); check TEST_LLM_KEY"):
        endpoint(server, api_key_env="TEST_LLM_KEY")
    with scripted_server(auth="right") as server:
        monkeypatch.setenv("TEST_LLM_KEY", "right")
        assert endpoint(server, api_key_env="TEST_LLM_KEY").generate([HI], Decoding())[0].text == "ok"


def test_a_missing_key_variable_is_named():
    with pytest.raises(SeqrecError, match="NO_SUCH_KEY_VARIABLE"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_KEY_VARIABLE")


def test_a_model_the_server_does_not_serve_is_one_clear_error():
    with scripted_server(models=("llama", "qwen")) as server:
        with pytest.raises(SeqrecError, match="does not serve model 'm'; it serves: llama, qwen"):
            endpoint(server)


def test_an_endpoint_table_builds_a_backend_and_unknown_keys_are_named():
    from seqrec.experiments.schema import EndpointSpec

    with scripted_server() as server:
        spec = EndpointSpec(base_url=server.url, model="m", max_concurrency=2, timeout=3, max_retries=1,
                            capabilities={"score": False}, options={"backoff": 0.01})
        backend = backend_from_endpoint(spec, "local")
        assert (backend.max_concurrency, backend.timeout, backend.max_retries) == (2, 3, 1)
        assert not backend.capabilities.score and server.requests == []  # overridden: no probe
        with pytest.raises(SeqrecError, match=r"endpoints.local.options: unknown keys \['bakoff'\]"):
            backend_from_endpoint({"base_url": server.url, "model": "m", "options": {"bakoff": 1}}, "local")
        assert open_backend(endpoint=server.url, endpoint_model="m", max_retries=0).max_retries == 0
    with pytest.raises(SeqrecError, match="needs --endpoint-model"):
        open_backend(endpoint="http://127.0.0.1:9/v1")
