"""Item embedders on tiny Llama/Qwen2 models: attention switch, pooling, batching, caching, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from llm_fixtures import TITLES, movies, tiny_llama, tiny_qwen2  # noqa: F401  (fixtures)
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from seqrec.data.prepared import PreparedData, write_prepared
from seqrec.errors import SeqrecError
from seqrec.llm.attention import set_attention
from seqrec.llm.embed import embed_items, encode_batches, tokenize
from seqrec.llm.encoder import ItemTextEncoder
from seqrec.settings import get_settings
from seqrec.store import open_store


def load(folder):
    return AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def tiny_gemma3():
    """A random two-layer Gemma 3 text model (one sliding-window layer, one full), as Gemma-3-270M is built."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    torch.manual_seed(0)
    return Gemma3TextModel(Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                            sliding_window=2, layer_types=["sliding_attention", "full_attention"]))


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_qwen2", "gemma3"])
def test_bidirectional_attention_lets_a_token_see_later_tokens(family, request):
    model = tiny_gemma3().eval() if family == "gemma3" else load(request.getfixturevalue(family))[0]
    first, changed = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[5, 6, 7, 9]])

    def first_token_moves() -> bool:
        with torch.no_grad():
            before, after = (model(input_ids=ids).last_hidden_state[0, 0] for ids in (first, changed))
        return not torch.allclose(before, after)

    assert not first_token_moves()
    set_attention(model, "bidirectional")
    assert first_token_moves()
    set_attention(model, "causal")
    assert not first_token_moves()


def test_bidirectional_is_refused_for_other_families():
    encoder = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(SeqrecError, match="not 'bert'"):
        set_attention(encoder, "bidirectional")


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("pooling", ["mean", "last", "eos"])
def test_pooling_and_batching_match_one_text_at_a_time(tiny_llama, pooling, attention):
    model, tokenizer = load(tiny_llama)
    set_attention(model, attention)
    token_ids = tokenize(tokenizer, TITLES, pooling, max_length=16)
    if pooling == "eos":
        assert all(ids[-1] == tokenizer.eos_token_id for ids in token_ids)
    batched = encode_batches(model, token_ids, pad_id=0, pooling=pooling, batch_size=5)
    for index, ids in enumerate(token_ids):
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        expected = hidden.mean(0) if pooling == "mean" else hidden[-1]
        np.testing.assert_allclose(batched[index], expected.numpy(), atol=1e-5)


def test_embedding_is_cached_by_its_full_config(tiny_qwen2, movies):
    first = embed_items(str(tiny_qwen2), movies, batch_size=4)
    matrix = np.load(first.path)
    assert not first.cached and matrix.shape == (13, 32) and matrix.dtype == np.float32
    assert not matrix[0].any() and np.abs(matrix[1:]).sum(1).min() > 0
    again = embed_items(str(tiny_qwen2), movies, batch_size=16)
    assert again == (first.run_id, first.path, True)
    other = embed_items(str(tiny_qwen2), movies, pooling="eos", attention="bidirectional")
    assert not other.cached and other.run_id != first.run_id
    store = open_store()
    assert len(store.list_runs(kind="embed")) == 2
    assert store.get_run(other.run_id).config["attention"] == "bidirectional"
    assert store.metrics(first.run_id, key="tokens")[0].value > len(TITLES)


def test_a_template_adds_item_attributes(tiny_llama, movies):
    plain = np.load(embed_items(str(tiny_llama), movies).path)
    templated = embed_items(str(tiny_llama), movies, template="{{ title }}, a {{ genre }} film")
    assert not templated.cached and not np.allclose(plain, np.load(templated.path))
    with pytest.raises(SeqrecError, match="'director' is undefined"):
        embed_items(str(tiny_llama), movies, template="{{ title }} by {{ director }}")


def test_a_dataset_without_titles_is_refused(tiny_llama):
    items = pd.DataFrame({"item": [1, 2], "source_id": ["a", "b"], "title": ["", " "]})
    train = pd.DataFrame({"user": [1], "items": [[1, 2]]})
    evaluation = pd.DataFrame({"user": [1], "history": [[1]], "target": [2]})
    folder = get_settings().data_dir / "untitled"
    write_prepared(PreparedData("untitled", items, train, evaluation, evaluation, {"name": "untitled"}), folder)
    open_store().add_dataset(name="untitled", source="test", fingerprint="f", options={}, stats={}, path=str(folder))
    with pytest.raises(SeqrecError, match="has no item titles"):
        embed_items(str(tiny_llama), "untitled")
    assert not open_store().list_runs(kind="embed")


def test_bad_options_are_refused_before_any_work(tiny_llama, movies):
    for options, message in (({"pooling": "max"}, "pooling must be one of"), ({"attention": "sideways"}, "attention must be one of"),
                             ({"batch_size": 0}, "batch_size = 0 is out of range")):
        with pytest.raises(SeqrecError, match=message):
            embed_items(str(tiny_llama), movies, **options)
    with pytest.raises(SeqrecError, match="no dataset named 'nope'"):
        embed_items(str(tiny_llama), "nope")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_the_trainable_encoder_matches_unpadded_encoding_under_bidirectional_attention(tiny_llama, pooling):
    model = AutoModel.from_pretrained(tiny_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    set_attention(model, "bidirectional")
    token_ids = tokenize(tokenizer, TITLES, pooling, 16)
    assert len({len(ids) for ids in token_ids}) > 1  # the batch really is padded
    one_at_a_time = encode_batches(model, token_ids, pad_id=0, pooling=pooling, batch_size=1)
    encoder = ItemTextEncoder(model, token_ids, 0, pooling)
    np.testing.assert_allclose(encoder.embed_all()[1:].numpy(), one_at_a_time, atol=1e-5)


def test_eos_pooling_truncates_to_make_room_for_the_eos_token(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    (ids,) = tokenize(tokenizer, ["The Lord of the Rings: The Return of the King (2003)"], "eos", 6)
    assert len(ids) == 6 and ids[-1] == tokenizer.eos_token_id
