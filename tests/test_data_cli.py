"""`seqrec data ...` through its own Typer app: output, and bad input as one line with exit code 2."""

from pathlib import Path

from typer.testing import CliRunner

from seqrec.cli.data import app

FIXTURES = Path(__file__).parent / "fixtures" / "amazon2023"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def test_prepare_list_show_delete():
    result = invoke("prepare", "amazon2023", "--category", "Video_Games", "--category", "All_Beauty",
                    "--raw-dir", FIXTURES, "--k-core", 2, "--max-len", 4, "--name", "mix")
    assert result.exit_code == 0, result.output
    assert "mix (amazon2023):" in result.output and "rows dropped:" in result.output
    listed = invoke("list")
    assert "mix" in listed.output and "amazon2023" in listed.output and "loo" in listed.output
    shown = invoke("show", "mix", "--examples", 1)
    assert shown.exit_code == 0 and "max_len=4" in shown.output and "test examples" in shown.output
    assert invoke("delete", "mix", "--yes").exit_code == 0
    assert "no datasets yet" in invoke("list").output


def test_prepare_movielens_and_csv_options():
    result = invoke("prepare", "movielens", "--variant", "ml-100k", "--split", "user-ratio", "--split-ratio", "8:1:1",
                    "--rating-threshold", 4)
    assert result.exit_code == 0, result.output
    assert "below_rating_threshold 44,625" in " ".join(result.output.split())  # ratings 1-3 of ML-100K


def test_bad_input_exits_2_with_one_line(tmp_path):
    cases = [
        (("prepare", "amazon2023", "--category", "Games", "--raw-dir", FIXTURES), "valid names: All_Beauty"),
        (("prepare", "amazon2023", "--category", "Video_Games", "--raw-dir", tmp_path), "missing review file"),
        (("prepare", "amazon2023", "--category", "Video_Games", "--raw-dir", FIXTURES, "--k-core", 40),
         "nothing is left after 40-core"),
        (("prepare", "atomic", "--path", tmp_path / "none"), "missing folder"),
        (("prepare", "movielens", "--variant", "ml-10m"), "unknown MovieLens variant"),
        (("prepare", "movielens", "--split", "random"), "--split must be one of"),
        (("show", "nope"), "no dataset named 'nope'"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert invoke("prepare", "movielens", "--k-core", 3, "--name", "taken").exit_code == 0
    taken = invoke("prepare", "movielens", "--k-core", 4, "--name", "taken")
    assert taken.exit_code == 2 and "already taken by other inputs" in taken.output
