"""Tiny LLMs (built once per session) and a small prepared dataset with movie-like titles and genres."""

import json
from contextlib import contextmanager

import pandas as pd
import pytest

from seqrec.data.prepare import prepare_csv
from seqrec.llm.tiny import build_tiny_model

TITLES = ["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)", "Casino (1995)", "Babe (1995)",
          "The Dark Knight (2008)", "Batman Begins (2005)", "Up (2009)", "Cars (2006)", "Alien (1979)",
          "Aliens (1986)", "Fargo (1996)"]
GENRES = ["Animation", "Animation", "Crime", "Crime", "Family", "Action", "Action", "Animation", "Animation",
          "Horror", "Action", "Crime"]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", "llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2", "qwen2")


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory):
    """A tiny Llama with a chat template and a context long enough for a few items (its tokenizer knows titles,
    not instructions, so a prompt costs hundreds of tokens)."""
    from llm_servers import build_chat_model

    folder = build_chat_model(tmp_path_factory.mktemp("chat") / "llama")
    config_path = folder / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "max_position_embeddings": 4096}))
    return folder


def make_movies_dataset(folder, name="movies", users=30, length=8):
    """Each user watches a run of consecutive titles, so every item appears and k-core keeps them all."""
    rows = [(f"u{user}", f"m{(user + step) % len(TITLES)}", 5, 1_000 + step)
            for user in range(users) for step in range(length)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(folder / "inter.csv", index=False)
    pd.DataFrame({"item_id": [f"m{i}" for i in range(len(TITLES))], "title": TITLES,
                  "genre": GENRES}).to_csv(folder / "items.csv", index=False)
    return prepare_csv(folder / "inter.csv", folder / "items.csv", name=name, k_core=2, max_len=5)


@pytest.fixture
def movies(tmp_path):
    return make_movies_dataset(tmp_path / "raw").name


@contextmanager
def killed_on_call(owner, name: str, call: int):
    """Within the block, ``owner.name`` raises KeyboardInterrupt (a Ctrl-C) on its ``call``-th call."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(owner, name, killed)
    try:
        yield
    finally:
        setattr(owner, name, original)
