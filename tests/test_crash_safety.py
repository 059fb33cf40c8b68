"""The crash suite (benchmarks/crash_safety.py) on one training stage, twice: `seqrec run` killed with SIGKILL
inside an LLM2Rec run and run again ends with the uninterrupted run's metrics and artifacts, a sound database and
no run left running. The benchmark runs it at 20 kills for every stage."""

import sys

import pytest


@pytest.mark.slow
def test_a_killed_llm2rec_run_is_resumed_to_the_uninterrupted_result(tmp_path, project_root):
    sys.path.insert(0, str(project_root / "benchmarks"))
    try:
        from crash_safety import crash_table
    finally:
        sys.path.remove(str(project_root / "benchmarks"))
    counts = crash_table(tmp_path, kills=2, seed=0, chosen={"llm2rec csft"})["llm2rec csft"]
    assert counts["kills"] == counts["completed"] == 2
    assert counts["identical metrics"] == counts["identical artifacts"] == 2
    assert counts["integrity failures"] == 0
