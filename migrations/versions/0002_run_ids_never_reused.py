"""run ids are never reused

A run's id names it in configs (``run:ID``), on the command line and as its folder. A plain INTEGER PRIMARY KEY
lets SQLite hand the largest id out again once that run is deleted, so an older ``run:ID`` could come to name
another run. AUTOINCREMENT keeps ids growing (PostgreSQL's sequences never go back, so there it changes nothing). SQLite cannot add it to a table, so batch mode rebuilds ``run``
(copy, drop, rename); ``upgrade_database`` runs migrations with foreign keys off, as SQLite's rebuild procedure
asks, or dropping the old table would cascade to every metric and artifact.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:10:00
"""

from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('run', recreate='always', table_kwargs={'sqlite_autoincrement': True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('run', recreate='always', table_kwargs={'sqlite_autoincrement': False}):
        pass
