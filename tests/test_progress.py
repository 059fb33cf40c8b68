"""Progress off a terminal: rich draws nothing there, so long tasks print plain lines to stderr."""

from seqrec.progress import duration, plain_line, progress_bar


def test_off_a_terminal_a_long_task_prints_plain_lines_and_a_last_one(capsys):
    with progress_bar(info=True) as bar:
        bar.every = 0.0  # every advance is "a minute later"
        task = bar.add_task("profiling 4 users", total=4, info="")
        for _ in range(4):
            bar.advance(task)
        bar.update(task, info="valid ndcg@10 0.0612")
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert lines[0].startswith("profiling 4 users: 1/4 (25%), ")
    assert "3/4 (75%)" in lines[2] and " left" in lines[2]
    assert lines[-1].startswith("profiling 4 users: 4/4 (100%), ")
    assert lines[-1].endswith(", done  valid ndcg@10 0.0612")


def test_a_short_task_prints_nothing_and_a_disabled_bar_nothing_at_all(capsys):
    with progress_bar() as bar:  # the default minute never passes here
        task = bar.add_task("embedding 3 titles", total=3)
        bar.advance(task, 3)
    with progress_bar(disable=True) as bar:
        bar.every = 0.0
        bar.advance(bar.add_task("training", total=2), 2)
    assert capsys.readouterr().err == ""


def test_transfers_count_megabytes_and_durations_read_as_time():
    with progress_bar(transfer=True) as bar:
        task = bar.add_task("reviews", total=5_000_000)
        bar.advance(task, 1_250_000)
        assert plain_line(bar.tasks[0], transfer=True).startswith("reviews: 1.2/5.0 MB (25%), ")
    assert [duration(s) for s in (42.4, 185, 3720)] == ["42s", "3m05s", "1h02m"]


def test_time_left_is_the_mean_rate_so_far(capsys):
    now = [0.0]
    with progress_bar() as bar:
        bar.get_time = lambda: now[0]
        task = bar.add_task("re-ranking 250 users", total=250)
        now[0] = 120.0  # one slice of 50 users two minutes later
        bar.advance(task, 50)
    first = capsys.readouterr().err.splitlines()[0]
    assert first == "re-ranking 250 users: 50/250 (20%), 2m00s so far, about 8m00s left"
