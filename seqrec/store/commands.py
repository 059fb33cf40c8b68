"""Plain functions behind `seqrec db ...` and `seqrec runs ...` (the CLI only prints what they return)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from seqrec.settings import get_settings
from seqrec.store.engine import head_revision, shown_url, stored_revision, upgrade_database
from seqrec.store.models import Artifact, Run, utcnow
from seqrec.store.store import open_store


def db_upgrade() -> tuple[str | None, str | None]:
    """Migrate the database to the newest schema: (revision before, revision after)."""
    settings = get_settings()
    settings.ensure_home()
    return upgrade_database(settings.db_url)


def db_status() -> dict:
    """Where the database is, which schema revision it holds, and how many rows each table has."""
    url = get_settings().db_url
    revision = stored_revision(url)
    head = head_revision(url)
    status = {"url": shown_url(url), "revision": revision, "head": head, "up_to_date": revision == head}
    if revision == head:
        status["rows"] = open_store().table_counts()
    return status


def list_runs(*, kind: str | None = None, status: str | None = None, experiment: str | None = None,
              limit: int | None = 50) -> tuple[list[Run], dict[int, dict[str, float]]]:
    """The newest runs matching the filters, with each run's final test metrics."""
    store = open_store()
    runs = store.list_runs(kind=kind, status=status, experiment=experiment, limit=limit)
    return runs, store.final_metrics_of([run.id for run in runs], split="test")


def worker_of(run: Run) -> str:
    """Which worker holds a running run and when it last beat (``host:pid, beat 4s ago``); empty otherwise."""
    if run.status != "running" or run.pid is None:
        return ""
    beat = "never beat" if run.heartbeat_at is None else \
        f"beat {max(0, int((utcnow() - run.heartbeat_at).total_seconds()))}s ago"
    return f"{run.host}:{run.pid}, {beat}"


@dataclass
class RunDetail:
    run: Run
    metrics: dict[str, dict[str, float]]
    artifacts: list[Artifact]
    inputs: list[dict] = field(default_factory=list)
    consumers: list[int] = field(default_factory=list)


def show_run(run_id: int) -> RunDetail:
    """Everything known about one run: config, final metrics per split, artifacts and lineage."""
    store = open_store()
    run = store.get_run(run_id)
    inputs = [{"run": link.input_run_id, "artifact": link.artifact_id, "role": link.role}
              for link in store.inputs(run_id)]
    consumers = sorted({link.run_id for link in store.consumers(run_id)})
    return RunDetail(run=run, metrics=store.final_metrics(run_id), artifacts=store.artifacts(run_id),
                     inputs=inputs, consumers=consumers)


def delete_run(run_id: int) -> Run:
    """Delete a run's rows and its folder under SEQREC_HOME/runs."""
    store = open_store()
    run = store.delete_run(run_id)
    shutil.rmtree(store.run_dir(run_id), ignore_errors=True)
    return run
