"""The local backend on tiny models: batched, padded fast paths checked against plain one-prompt computations."""

import pytest
import torch
from llm_fixtures import tiny_llama, tiny_qwen2  # noqa: F401 (fixtures)
from llm_servers import build_chat_model

from seqrec.errors import SeqrecError
from seqrec.llm.backends import ContextLengthError, Decoding
from seqrec.llm.backends.local import LocalBackend

PROMPTS = ["Toy Story (1995)", "The Dark Knight Returns Again In The City", "Up", "Heat (1995) and then"]
LABELS = ["A", "B", " A", "1"]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return build_chat_model(tmp_path_factory.mktemp("chat") / "llama")


@pytest.fixture
def backend(chat_model):
    return LocalBackend(str(chat_model), dtype="float32", batch_size=3)


def plain_next_logprobs(backend, ids):
    """The next-token distribution of one unpadded prompt, from a full forward pass."""
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def plain_greedy(backend, ids, steps):
    """Greedy decoding without a KV cache or padding: the whole sequence re-run for every new token."""
    ids = list(ids)
    new = []
    for _ in range(steps):
        token = int(plain_next_logprobs(backend, ids).argmax())
        if token in backend.eos_ids:
            break
        ids.append(token)
        new.append(token)
    return backend.tokenizer.decode(new, skip_special_tokens=True)


def test_a_padded_batch_scores_each_prompt_as_a_plain_forward_pass_does(backend):
    scores = backend.score(PROMPTS, LABELS)
    for prompt, score in zip(PROMPTS, scores):
        reference = plain_next_logprobs(backend, backend.prompt_ids(prompt))
        for label in LABELS:
            assert score.logprobs[label] == pytest.approx(float(reference[backend.label_id(label)]), abs=1e-5)
        assert score.prompt_tokens == len(backend.prompt_ids(prompt))


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_batched_greedy_generation_matches_a_plain_token_by_token_loop(family, request):
    backend = LocalBackend(str(request.getfixturevalue(f"tiny_{family}")), dtype="float32", batch_size=4)
    generations = backend.generate(PROMPTS, Decoding(max_tokens=6))
    for prompt, generation in zip(PROMPTS, generations):
        assert generation.text == plain_greedy(backend, backend.prompt_ids(prompt), 6)
        assert generation.finish_reason in ("length", "stop")
        assert generation.completion_tokens <= 6


def test_chat_messages_go_through_the_models_chat_template(backend):
    messages = [{"role": "user", "content": "Toy Story"}]
    text = backend.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("assistant:")
    assert backend.prompt_ids(messages) == backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert backend.score([messages], ["A"])[0].prompt_tokens == len(backend.prompt_ids(messages))


def test_a_model_without_a_chat_template_refuses_messages(tiny_llama):
    backend = LocalBackend(str(tiny_llama), dtype="float32")
    assert not backend.capabilities.chat
    with pytest.raises(SeqrecError, match="no chat template"):
        backend.generate([[{"role": "user", "content": "hi"}]], Decoding(max_tokens=2))


def test_a_label_that_is_not_one_token_is_refused_by_name(backend):
    with pytest.raises(SeqrecError, match="score label ' the' is not one token"):
        backend.score(PROMPTS, ["A", " the"])


def test_max_tokens_beyond_the_context_is_refused(backend):
    with pytest.raises(ContextLengthError, match="256-token context"):
        backend.generate(["Up"], Decoding(max_tokens=300))


def test_generated_token_logprobs_agree_with_score(backend):
    generation = backend.generate(["Toy Story (1995)"], Decoding(max_tokens=3, logprobs=5))[0]
    first = generation.tokens[0]
    assert first.logprob == max(first.top.values())  # greedy takes the best token
    assert backend.score(["Toy Story (1995)"], [first.token])[0].logprobs[first.token] == \
        pytest.approx(first.logprob, abs=1e-5)


def test_a_stop_string_ends_the_text_before_it(backend):
    free = backend.generate(["Toy Story"], Decoding(max_tokens=8))[0].text
    stop = free[2:4]
    stopped = backend.generate(["Toy Story"], Decoding(max_tokens=8, stop=(stop,)))[0]
    assert stopped.text == free[:free.find(stop)]
    assert stopped.finish_reason == "stop"


def test_a_fixed_seed_repeats_a_sampled_generation(backend):
    decoding = Decoding(max_tokens=8, temperature=1.0, seed=7)
    assert backend.generate(PROMPTS, decoding) == backend.generate(PROMPTS, decoding)
    assert decoding.deterministic and not Decoding(temperature=1.0).deterministic


def test_weights_and_precision_make_the_identity(backend, chat_model):
    assert backend.record.sha256 in backend.identity and backend.identity.endswith("/float32")
    assert LocalBackend(str(chat_model), dtype="bfloat16").identity != backend.identity
