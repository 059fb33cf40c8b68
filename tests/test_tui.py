"""The dashboard driven by Textual's Pilot in an 80x24 terminal, plus a screenshot compared with a reference."""

import html
import os
import re
from pathlib import Path

import pytest
import typer
from textual.widgets import DataTable
from typer.testing import CliRunner
from test_report import add_run

from seqrec.cli.dashboard import dashboard
from seqrec.store import open_store
from seqrec.tui import SeqrecDashboard
from seqrec.tui.detail import CompareScreen, RunScreen
from seqrec.tui.help import HelpScreen
from seqrec.tui.reports import ReportScreen
from seqrec.tui.runs import RunsScreen, parse_filter

# async tests run by anyio's pytest plugin (anyio comes with httpx/openai); the dashboard reads either backend
pytestmark = [pytest.mark.anyio, pytest.mark.backend]
SIZE = (80, 24)
REFERENCE = Path(__file__).with_name("test_tui_snapshots") / "runs_80x24.svg"


@pytest.fixture
def store():
    """Three finished runs over two seeds, one failed, one still running with a training curve."""
    store = open_store()
    for seed in (0, 1):
        add_run(store, seed=seed, metrics={"ndcg@10": 0.05 + seed / 100, "recall@10": 0.1})
        add_run(store, seed=seed, item_emb="smollm2-135m", metrics={"ndcg@10": 0.07 + seed / 100, "recall@10": 0.2})
    add_run(store, model="gru4rec", experiment="other", status="failed")
    running = add_run(store, model="caser", status="running")
    for step in range(12):
        store.add_metrics(running.id, {"loss": 1 / (step + 1)}, step=step, split="train")
    return store


def rows(app) -> list[str]:
    """The run ids down the runs table, top first."""
    table = app.screen.query_one("#runs", DataTable)
    return [str(table.get_row_at(index)[1]) for index in range(table.row_count)]


def screen_text(app) -> str:
    """What the screen shows, as one line of text."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())))


async def wait_for(pilot, condition, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the dashboard did not get there in time")


async def test_navigate_and_open_a_run(store):
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        assert rows(app) == ["6", "5", "4", "3", "2", "1"]
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == 6
        text = screen_text(app)
        assert "train/loss" in text and "█▄▃▂" in text and "caser" in text
        await pilot.press("escape", "down", "down", "enter")
        assert app.screen.run_id == 4
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_filter_and_sort(store):
    app = SeqrecDashboard(store=store, experiment="study", refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        assert "5" not in rows(app) and len(rows(app)) == 5
        await pilot.press("slash", *"  status=finished", "enter")
        assert rows(app) == ["4", "3", "2", "1"]
        await pilot.press("s")  # sort by ndcg@10, best first
        assert rows(app) == ["4", "2", "3", "1"]
        await pilot.press("s")
        assert rows(app) == ["4", "2", "3", "1"] and app.screen.sort_column == "recall@10"
        await pilot.press("slash", *" bogus=1")
        assert "unknown filter 'bogus'" in screen_text(app) and len(rows(app)) == 6
        assert app.screen.query_one("#filter").value == "experiment=study  status=finished bogus=1"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_dashboard_command_options():
    app = typer.Typer()
    app.command()(dashboard)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "--experiment" in result.output and "--refresh" in result.output


def test_parse_filter():
    assert parse_filter("exp=a st=running sasrec") == ({"experiment": "a", "status": "running"}, ["sasrec"])
    with pytest.raises(ValueError, match="unknown filter"):
        parse_filter("=x")


async def test_compare_selected_runs(store):
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen)  # nothing selected yet: a notice, no screen
        await pilot.press("down", "down", "space", "down", "space", "c")
        assert isinstance(app.screen, CompareScreen) and app.screen.run_ids == [3, 4]
        table = app.screen.query_one(DataTable)
        fields = [str(table.get_row_at(index)[0]) for index in range(table.row_count)]
        assert fields == ["item_emb", "test/ndcg@10", "test/recall@10"]
        assert table.get_row_at(1)[2].style == "bold"  # run 4 has the better NDCG


async def test_live_refresh_picks_up_new_metrics(store):
    app = SeqrecDashboard(store=store, refresh=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        assert "valid/ndcg@10" not in screen_text(app)
        store.add_metrics(6, {"ndcg@10": 0.01}, step=1, split="valid")
        store.add_metrics(6, {"ndcg@10": 0.02}, step=2, split="valid")
        await wait_for(pilot, lambda: "valid/ndcg@10" in screen_text(app))
        add_run(store, model="bert4rec", seed=3)
        await pilot.press("escape")
        await wait_for(pilot, lambda: rows(app)[0] == "7")


async def test_report_tables_and_help(store):
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, ReportScreen)
        table = app.screen.query_one("#report", DataTable)
        assert [str(table.get_row_at(index)[0]) for index in range(table.row_count)] == [
            "sasrec", "sasrec + smollm2-135m", "gru4rec", "caser"]
        await pilot.press("4")
        assert app.screen.kind == "ablation"
        await pilot.press("3", "question_mark")
        assert isinstance(app.screen, HelpScreen) and "ablation" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, ReportScreen)


async def test_runs_screen_matches_reference_screenshot(store):
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        svg = app.export_screenshot(simplify=True)
    if os.environ.get("SEQREC_UPDATE_SNAPSHOTS") == "1":
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(svg, encoding="utf-8")
    if not REFERENCE.exists():
        pytest.fail(f"no reference screenshot at {REFERENCE}; look at the screen and write one with "
                    "SEQREC_UPDATE_SNAPSHOTS=1, then commit it")
    assert svg == REFERENCE.read_text(encoding="utf-8"), (
        "the runs screen changed; look at it and rerun with SEQREC_UPDATE_SNAPSHOTS=1 if the change is right")


async def test_a_reranking_run_shows_its_llm_mode_and_how_its_answers_fared(store):
    run = add_run(store, kind="rerank", item_emb="distilled", rerank="smollm2/generate", llm="smollm2@abc/float32",
                  backend="local", mode="generate", top_k=20, permutations=3, alpha=0.5, users=50,
                  noise="deletion", metrics={"ndcg@10": 0.061, "recall@10": 0.12})
    store.add_metrics(run.id, {"ndcg@10": 0.052, "recall@10": 0.11}, step=None, split="base")
    store.add_metrics(run.id, {"parsed": 140, "repaired": 7, "fallback": 3}, step=None, split="rerank")
    store.add_metrics(run.id, {"llm_cache_hits": 0, "llm_fresh_calls": 150, "llm_failures": 2}, step=None,
                      split="llm")
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == run.id
        text = screen_text(app)
        assert "smollm2@abc/float32 (local)" in text and "generate, top 20, 3 permutation(s), alpha 0.5" in text
        assert "parsed 140 · repaired 7 · fallen back 3" in text and "failures 2" in text
        assert "0.0610 re-ranked, 0.0520 base" in text
        await pilot.press("escape", "r", "3")
        table = app.screen.query_one("#report", DataTable)
        labels = [str(table.get_row_at(index)[0]) for index in range(table.row_count)]
        assert "sasrec + distilled, noise=deletion, users=50" in labels
        assert "sasrec + distilled, noise=deletion, rerank=smollm2/generate, users=50" in labels


async def test_delrec_runs_and_both_delrec_tables(store):
    from test_report import add_delrec_run, sampled

    for seed in (0, 1):
        add_run(store, seed=seed, eval="sampled:14", experiment="delrec", metrics=sampled(0.3, 0.6, 0.45, 0.75, 0.5))
        add_delrec_run(store, seed=seed, experiment="delrec", metrics=sampled(0.34, 0.66, 0.5, 0.8, 0.54))
        add_delrec_run(store, seed=seed, variant="w_usp", experiment="delrec", metrics=sampled(0.3, 0.6, 0.45, 0.75,
                                                                                              0.5))
    app = SeqrecDashboard(store=store, experiment="delrec", refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        text = screen_text(app)
        assert "DELRec (SASRec) ml-100k" in text and "DELRec (SASRec) w U… ml-100k" in text  # 20 characters shown
        await pilot.press("slash", *" kind=delrec-finetune", "enter")
        assert len(rows(app)) == 4
        await pilot.press("r", "6")
        assert app.screen.kind == "delrec"
        table = app.screen.query_one("#report", DataTable)
        assert [str(table.get_row_at(index)[0]) for index in range(table.row_count)] == [
            "SASRec", "DELRec (SASRec), smollm2-135m-instruct"]
        await pilot.press("7")
        assert app.screen.kind == "delrec-ablation"
        table = app.screen.query_one("#report", DataTable)
        assert [str(table.get_row_at(index)[0]) for index in range(table.row_count)] == [
            "Default (SASRec, smollm2-135m-instruct)", "w USP (SASRec, smollm2-135m-instruct)"]
        await pilot.press("p")
        table = app.screen.query_one("#report", DataTable)
        assert "002-T3 w USP" in [str(table.get_row_at(index)[0]) for index in range(table.row_count)]


async def test_a_profiles_run_shows_one_users_profile_at_a_time_and_the_profiles_table(tmp_path):
    store = open_store()
    for seed in (0, 1):
        add_run(store, seed=seed, metrics={"recall@10": 0.10 + seed / 100, "ndcg@10": 0.05})
        add_run(store, seed=seed, profiles="run:9", metrics={"recall@10": 0.12 + seed / 100, "ndcg@10": 0.06})
    written = add_run(store, kind="profiles", model=None, dataset="ml-100k")
    path = tmp_path / "profiles.json"
    path.write_text('{"10": "Likes slow westerns.", "2": "Watches [b]cartoons[/b] with the kids."}')
    store.add_artifact(written.id, path, "profiles")
    app = SeqrecDashboard(store=store, refresh=0)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("enter")
        assert app.screen.run_id == written.id
        assert "profile of user 2 (1 of 2" in screen_text(app) and "Next user" in screen_text(app)
        assert "Watches [b]cartoons[/b] with the kids." in screen_text(app)  # shown as written, not as markup
        await pilot.press("n")
        assert "profile of user 10 (2 of 2" in screen_text(app) and "Likes slow westerns." in screen_text(app)
        await pilot.press("n")
        assert "profile of user 2 (1 of 2" in screen_text(app)
        await pilot.press("escape", "down", "enter")
        assert "Next user" not in screen_text(app) and "profile of user" not in screen_text(app)
        await pilot.press("escape", "r", "5")
        assert app.screen.kind == "profiles"
        table = app.screen.query_one("#report", DataTable)
        assert [str(table.get_row_at(index)[0]) for index in range(table.row_count)] == ["sasrec",
                                                                                          "sasrec, distilled"]
        assert "(+19.0%)" in str(table.get_row_at(1)[1])  # mean recall 0.125 against 0.105
