"""The Store: every read and write of the experiment database goes through here."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from seqrec.errors import SeqrecError
from seqrec.settings import Settings, get_settings
from seqrec.store.engine import create_db_engine, sqlite_path, upgrade_database
from seqrec.store.hashing import config_hash, file_digest
from seqrec.store.models import Artifact, Claim, Dataset, LLMCall, Metric, Model, Run, RunInput, utcnow

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
RESUMABLE = ("running", "failed", "interrupted")
# INSERT ... ON CONFLICT DO NOTHING, which queues a study's points once however many workers queue them at once.
INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class Store:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.db_url
        self.engine = create_db_engine(self.url)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @property
    def db_path(self) -> Path | None:
        return sqlite_path(self.url)

    # datasets -------------------------------------------------------------------------------------------
    def get_dataset(self, name: str) -> Dataset | None:
        with self.session() as session:
            return session.exec(select(Dataset).where(Dataset.name == name)).first()

    def add_dataset(self, *, name: str, source: str, fingerprint: str, options: dict, stats: dict,
                    path: str) -> Dataset:
        row = Dataset(name=name, source=source, fingerprint=fingerprint, options=options, stats=stats, path=path)
        return self._add(row)

    def list_datasets(self) -> list[Dataset]:
        with self.session() as session:
            return list(session.exec(select(Dataset).order_by(Dataset.name)))

    def delete_dataset(self, name: str) -> None:
        with self.session() as session, session.begin():
            session.exec(delete(Dataset).where(Dataset.name == name))

    # models ---------------------------------------------------------------------------------------------
    def get_model(self, alias: str) -> Model | None:
        with self.session() as session:
            return session.exec(select(Model).where(Model.alias == alias)).first()

    def add_model(self, *, alias: str, source: str, path: str, revision: str | None = None, sha256: str | None = None,
                  size_bytes: int | None = None, meta: dict | None = None) -> Model:
        """Record a pulled model; pulling an alias again replaces its row."""
        with self.session() as session, session.begin():
            session.exec(delete(Model).where(Model.alias == alias))
            row = Model(alias=alias, source=source, path=path, revision=revision, sha256=sha256,
                        size_bytes=size_bytes, meta=meta or {})
            session.add(row)
        return row

    def list_models(self) -> list[Model]:
        with self.session() as session:
            return list(session.exec(select(Model).order_by(Model.alias)))

    # runs -----------------------------------------------------------------------------------------------
    def start_run(self, kind: str, config: dict, *, experiment: str | None = None, seed: int | None = None,
                  dataset: str | None = None, inputs: Iterable[int | Artifact] = (), resume: int | None = None):
        """Open a tracked run (a context manager); see :func:`seqrec.store.tracker.tracked_run`."""
        from seqrec.store.tracker import tracked_run

        return tracked_run(self, kind, config, experiment=experiment, seed=seed, dataset=dataset,
                           inputs=inputs, resume=resume)

    def get_run(self, run_id: int) -> Run:
        with self.session() as session:
            run = session.get(Run, run_id)
        if run is None:
            raise SeqrecError(f"no run with id {run_id} (see `seqrec runs list`)")
        return run

    def list_runs(self, *, kind: str | None = None, status: str | None = None, experiment: str | None = None,
                  limit: int | None = 50) -> list[Run]:
        if status is not None and status not in RUN_STATUSES:
            raise SeqrecError(f"unknown status {status!r}; choose one of {', '.join(RUN_STATUSES)}")
        query = select(Run).order_by(Run.id.desc())
        for column, value in ((Run.kind, kind), (Run.status, status), (Run.experiment, experiment)):
            if value is not None:
                query = query.where(column == value)
        if limit:
            query = query.limit(limit)
        with self.session() as session:
            return list(session.exec(query))

    def find_run(self, config_hash: str, *, kind: str | None = None, status: str | tuple[str, ...] = "finished",
                 experiment: str | None = None) -> Run | None:
        """The newest run with this resolved config (and status): how finished work is found and reused."""
        statuses = (status,) if isinstance(status, str) else status
        query = select(Run).where(Run.config_hash == config_hash, Run.status.in_(statuses)).order_by(Run.id.desc())
        for column, value in ((Run.kind, kind), (Run.experiment, experiment)):
            if value is not None:
                query = query.where(column == value)
        with self.session() as session:
            return session.exec(query).first()

    def finished_artifact(self, config: dict, kind: str, artifact_kind: str) -> tuple[int, Path] | None:
        """(run id, file) of the newest finished ``kind`` run of this resolved config, while its newest
        ``artifact_kind`` file is still on disk: how a finished result is reused instead of made again."""
        run = self.find_run(config_hash(config), kind=kind)
        if run is None:
            return None
        for artifact in reversed(self.artifacts(run.id, kind=artifact_kind)):
            if Path(artifact.path).exists():
                return run.id, Path(artifact.path)
        return None

    def resumable_run(self, run_id: int, kind: str) -> Run:
        """The run ``--resume ID`` names, refused when it is of another kind or already finished."""
        run = self.get_run(run_id)
        if run.kind != kind:
            raise SeqrecError(f"run {run_id} is a {run.kind} run, not a {kind} run; it cannot be resumed here")
        if run.status == "finished":
            raise SeqrecError(f"run {run_id} is finished; there is nothing to resume")
        return run

    def delete_run(self, run_id: int) -> Run:
        """Delete a run with its metrics, artifacts rows and lineage (the caller removes its folder)."""
        run = self.get_run(run_id)
        with self.session() as session, session.begin():
            session.exec(delete(Run).where(Run.id == run_id))
        return run

    def run_dir(self, run_id: int) -> Path:
        return self.settings.runs_dir / str(run_id)

    # metrics, artifacts, lineage ------------------------------------------------------------------------
    def add_metrics(self, run_id: int, values: dict[str, float], *, step: int | None, split: str) -> None:
        rows = [Metric(run_id=run_id, key=key, value=float(value), step=step, split=split)
                for key, value in values.items()]
        with self.session() as session, session.begin():
            session.add_all(rows)

    def metrics(self, run_id: int, *, split: str | None = None, key: str | None = None) -> list[Metric]:
        query = select(Metric).where(Metric.run_id == run_id).order_by(Metric.id)
        if split is not None:
            query = query.where(Metric.split == split)
        if key is not None:
            query = query.where(Metric.key == key)
        with self.session() as session:
            return list(session.exec(query))

    def final_metrics(self, run_id: int) -> dict[str, dict[str, float]]:
        """split -> key -> the last value logged."""
        final: dict[str, dict[str, float]] = {}
        for metric in self.metrics(run_id):
            final.setdefault(metric.split, {})[metric.key] = metric.value
        return final

    def final_metrics_of(self, run_ids: list[int], split: str) -> dict[int, dict[str, float]]:
        """run id -> key -> last value of one split, for many runs in one query (tables of runs)."""
        query = select(Metric).where(Metric.run_id.in_(run_ids), Metric.split == split).order_by(Metric.id)
        final: dict[int, dict[str, float]] = {}
        with self.session() as session:
            for metric in session.exec(query):
                final.setdefault(metric.run_id, {})[metric.key] = metric.value
        return final

    def add_artifact(self, run_id: int, path: Path, kind: str, meta: dict | None = None) -> Artifact:
        path = Path(path).absolute()
        if not path.exists():
            raise SeqrecError(f"artifact {path} does not exist")
        sha256, size = file_digest(path)
        return self._add(Artifact(run_id=run_id, kind=kind, path=str(path), sha256=sha256, bytes=size, meta=meta or {}))

    def artifacts(self, run_id: int, kind: str | None = None) -> list[Artifact]:
        query = select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)
        if kind is not None:
            query = query.where(Artifact.kind == kind)
        with self.session() as session:
            return list(session.exec(query))

    def get_artifact(self, artifact_id: int) -> Artifact:
        with self.session() as session:
            artifact = session.get(Artifact, artifact_id)
        if artifact is None:
            raise SeqrecError(f"no artifact with id {artifact_id}")
        return artifact

    def add_inputs(self, run_id: int, inputs: Iterable[int | Artifact]) -> None:
        rows = []
        for item in inputs:
            if isinstance(item, Artifact):
                rows.append(RunInput(run_id=run_id, input_run_id=item.run_id, artifact_id=item.id, role=item.kind))
            else:
                self.get_run(int(item))
                rows.append(RunInput(run_id=run_id, input_run_id=int(item), role="run"))
        with self.session() as session, session.begin():
            session.add_all(rows)

    def inputs(self, run_id: int) -> list[RunInput]:
        with self.session() as session:
            return list(session.exec(select(RunInput).where(RunInput.run_id == run_id).order_by(RunInput.id)))

    def consumers(self, run_id: int) -> list[RunInput]:
        """Runs that consumed this run's output (lineage downstream)."""
        with self.session() as session:
            return list(session.exec(select(RunInput).where(RunInput.input_run_id == run_id).order_by(RunInput.id)))

    # LLM calls: the response cache and the audit log ----------------------------------------------------
    def cached_llm_calls(self, *, backend: str, model: str, params_hash: str,
                         prompt_hashes: Iterable[str]) -> dict[str, LLMCall]:
        """prompt hash -> the newest successful call with this backend, model identity and parameters."""
        hashes = sorted(set(prompt_hashes))
        found: dict[str, LLMCall] = {}
        with self.session() as session:
            for start in range(0, len(hashes), 500):  # SQLite caps the parameters of one statement
                query = (select(LLMCall).where(LLMCall.backend == backend, LLMCall.model == model,
                                               LLMCall.params_hash == params_hash, LLMCall.error.is_(None),
                                               LLMCall.prompt_hash.in_(hashes[start:start + 500]))
                         .order_by(LLMCall.id))
                found.update((row.prompt_hash, row) for row in session.exec(query))
        return found

    def add_llm_calls(self, rows: Iterable[LLMCall]) -> None:
        with self.session() as session, session.begin():
            session.add_all(list(rows))

    def llm_calls(self, *, run_id: int | None = None, limit: int | None = None) -> list[LLMCall]:
        query = select(LLMCall).order_by(LLMCall.id)
        if run_id is not None:
            query = query.where(LLMCall.run_id == run_id)
        if limit:
            query = query.limit(limit)
        with self.session() as session:
            return list(session.exec(query))

    def table_counts(self) -> dict[str, int]:
        counts = {}
        with self.session() as session:
            for table in (Dataset, Model, Run, Metric, Artifact, RunInput):
                counts[table.__tablename__] = session.exec(select(func.count()).select_from(table)).one()
        return counts

    def change_marker(self) -> tuple:
        """A cheap fingerprint of runs, metrics and artifacts that changes with any write to them, so that a
        reader (the dashboard) can poll it and reload only when something happened."""
        parts = (
            select(func.count(Run.id)), select(func.max(Run.id)), select(func.max(Run.finished_at)),
            select(func.count(Run.id)).where(Run.status == "running"),
            select(func.max(Metric.id)), select(func.max(Artifact.id)),
        )
        with self.session() as session:
            return tuple(session.exec(select(*(part.scalar_subquery() for part in parts))).one())

    def _add(self, row):
        with self.session() as session, session.begin():
            session.add(row)
        return row

    # run status transitions (used by the tracker) ---------------------------------------------------------
    def create_run(self, run: Run) -> Run:
        return self._add(run)

    def reopen_run(self, run_id: int, *, host: str, pid: int) -> Run:
        run = self.get_run(run_id)
        if run.status not in RESUMABLE:
            raise SeqrecError(f"run {run_id} is {run.status}; only a running, failed or interrupted run can be resumed")
        return self.update_run(run_id, status="running", error=None, finished_at=None, host=host, pid=pid,
                               heartbeat_at=utcnow())

    def beat_run(self, run_id: int) -> None:
        with self.session() as session, session.begin():
            session.exec(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))

    def lost_before(self):
        """The moment before which a worker that has not beaten counts as stopped."""
        return utcnow() - timedelta(seconds=self.settings.reclaim_after_s)

    def interrupt_lost_runs(self) -> list[int]:
        """Close as interrupted every running run whose worker stopped beating, so that it is resumed (or run
        again) instead of staying running forever; returns their ids."""
        with self.session() as session, session.begin():
            lost = list(session.exec(select(Run).where(Run.status == "running",
                                                       Run.heartbeat_at < self.lost_before())))
            for run in lost:
                run.status = "interrupted"
                run.error = f"its worker {run.host}:{run.pid} stopped beating at {run.heartbeat_at:%Y-%m-%d %H:%M:%S}"
                run.finished_at = run.heartbeat_at
                run.duration_s = (run.finished_at - run.started_at).total_seconds()
        return [run.id for run in lost]

    def update_run(self, run_id: int, **fields) -> Run:
        with self.session() as session, session.begin():
            run = session.get(Run, run_id)
            for name, value in fields.items():
                setattr(run, name, value)
            if fields.get("status") in ("finished", "failed", "interrupted"):
                run.finished_at = utcnow()
                run.duration_s = (run.finished_at - run.started_at).total_seconds()
        return run

    # claims: one study, many workers ---------------------------------------------------------------------------
    @contextmanager
    def locked_session(self):
        """A session whose transaction holds the write lock from its start on SQLite (BEGIN IMMEDIATE), so that
        two workers never read the same queue; on PostgreSQL the rows it selects FOR UPDATE are locked instead."""
        dialect = self.engine.dialect.name
        if dialect not in INSERTS:
            raise SeqrecError(f"workers share a study through SQLite or PostgreSQL, not {dialect}")
        with self.engine.connect() as connection, connection.begin():
            if dialect == "sqlite":  # the driver has not begun yet: this BEGIN is the transaction's
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            with Session(bind=connection, expire_on_commit=False) as session:  # joins the transaction
                yield session
                session.flush()

    def claim_next(self, experiment: str, points: dict[str, str], host: str, pid: int) -> str | None:
        """Queue the experiment's open points (key -> label) that are not queued yet, then claim the oldest one
        that no live worker holds: queued, or held by a worker that stopped beating. Returns its key, or None
        while live workers hold them all.

        A live claim on one of these points under another key means another worker's experiments file gives the
        point another meaning; that is refused before anything is written."""
        now, lost_before = utcnow(), self.lost_before()
        with self.locked_session() as session:
            claims = session.exec(select(Claim).where(Claim.experiment == experiment)).all()
            for claim in claims:
                if claim.point not in points.values() or claim.key in points:
                    continue
                if claim.heartbeat_at >= lost_before:
                    raise SeqrecError(f"experiment {experiment!r}, point {claim.point}: another worker "
                                      f"({claim.host or 'queued'}) runs it with another config (its hash differs); "
                                      "give every worker the same experiments file")
                session.delete(claim)  # a stopped worker's point whose meaning the file has since changed
            rows = [{"key": key, "experiment": experiment, "point": label, "heartbeat_at": now, "created_at": now}
                    for key, label in points.items()]
            if rows:
                session.exec(INSERTS[self.engine.dialect.name](Claim).values(rows)
                             .on_conflict_do_nothing(index_elements=["key"]))
            claim = session.exec(select(Claim).where(Claim.key.in_(list(points)),
                                                     or_(Claim.host.is_(None), Claim.heartbeat_at < lost_before))
                                 .order_by(Claim.id).limit(1).with_for_update(skip_locked=True)).first()
            if claim is None:
                return None
            claim.host, claim.pid, claim.heartbeat_at = host, pid, now
            session.add(claim)
            return claim.key

    def beat_claim(self, key: str, host: str, pid: int) -> None:
        with self.session() as session, session.begin():
            session.exec(update(Claim).where(Claim.key == key, Claim.host == host, Claim.pid == pid)
                         .values(heartbeat_at=utcnow()))

    def release_claim(self, key: str, host: str, pid: int) -> None:
        """Drop this worker's claim (not one that another worker has taken over since)."""
        with self.session() as session, session.begin():
            session.exec(delete(Claim).where(Claim.key == key, Claim.host == host, Claim.pid == pid))

    def claims(self, experiment: str | None = None) -> list[Claim]:
        query = select(Claim).order_by(Claim.id)
        if experiment is not None:
            query = query.where(Claim.experiment == experiment)
        with self.session() as session:
            return list(session.exec(query))


_open_stores: dict[str, Store] = {}


def open_store(settings: Settings | None = None) -> Store:
    """Open (and migrate, if needed) the database named by the settings; one Store per database and process."""
    settings = settings or get_settings()
    if settings.db_url in _open_stores and _open_stores[settings.db_url].settings == settings:
        return _open_stores[settings.db_url]
    settings.ensure_home()
    db_file = sqlite_path(settings.db_url)
    if db_file is not None:
        try:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqrecError(f"cannot create the database folder {db_file.parent}: {exc.strerror or exc}") from None
    upgrade_database(settings.db_url)
    _open_stores[settings.db_url] = Store(settings)
    return _open_stores[settings.db_url]
