"""The experiment database's tables (SQLModel). Change them only together with an Alembic migration."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, MetaData, Text
from sqlmodel import Field, SQLModel

# A naming convention makes constraint names stable, so that batch migrations on SQLite can find them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Dataset(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    source: str
    fingerprint: str
    options: dict = json_column()
    stats: dict = json_column()
    path: str
    created_at: datetime = Field(default_factory=utcnow)


class Model(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    alias: str = Field(unique=True)
    source: str
    revision: Optional[str] = None
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None
    path: str
    meta: dict = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    __table_args__ = {"sqlite_autoincrement": True}  # a deleted run's id is never handed out again
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    experiment: Optional[str] = Field(default=None, index=True)
    status: str = Field(index=True)
    config: dict = json_column()
    config_hash: str = Field(index=True)
    seed: Optional[int] = None
    dataset: Optional[str] = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None
    duration_s: Optional[float] = None
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    host: Optional[str] = None
    pid: Optional[int] = None  # with host: the worker process that holds the run while it runs
    heartbeat_at: Optional[datetime] = None  # that worker's last beat; a running run that stops beating is lost
    code_version: Optional[str] = None


class Claim(SQLModel, table=True):
    """A point of a study queued for the workers of `seqrec run` (no host yet) or held by one (host, pid and its
    last beat). The row goes when the point's run ends; a claim whose worker stopped beating is taken over."""

    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # the point's stage, experiment and the hash of what it asks for
    experiment: str = Field(index=True)
    point: str  # the point's parameters as the plan shows them
    host: Optional[str] = None
    pid: Optional[int] = None
    heartbeat_at: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow)


class RunInput(SQLModel, table=True):
    """Lineage: a run consumed another run's output or one of its artifacts."""

    __tablename__ = "run_input"
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    input_run_id: Optional[int] = Field(default=None, foreign_key="run.id", ondelete="SET NULL")
    artifact_id: Optional[int] = Field(default=None, foreign_key="artifact.id", ondelete="SET NULL")
    role: str = "input"


class Metric(SQLModel, table=True):
    __table_args__ = (Index("ix_metric_run_split_key", "run_id", "split", "key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    key: str
    value: float
    step: Optional[int] = None
    split: str = "valid"
    created_at: datetime = Field(default_factory=utcnow)


class Artifact(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    kind: str = Field(index=True)
    path: str
    sha256: str
    bytes: int
    meta: dict = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class LLMCall(SQLModel, table=True):
    """Every LLM request: the response cache (keyed by model + prompt hash + params hash) and the audit log."""

    __tablename__ = "llm_call"
    __table_args__ = (Index("ix_llm_call_cache_key", "backend", "model", "prompt_hash", "params_hash"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="run.id", ondelete="SET NULL")
    backend: str
    model: str
    prompt_hash: str
    params_hash: str
    request: dict = json_column()
    response: Optional[str] = Field(default=None, sa_column=Column(Text))
    latency_s: Optional[float] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
