"""`seqrec db`: the experiment database's schema."""

from seqrec.cli._app import command_group, console
from seqrec.store import commands

app = command_group("The experiment database: schema upgrades and status.")


@app.command()
def upgrade() -> None:
    """Apply any pending schema migrations (also done automatically whenever the database is opened)."""
    before, after = commands.db_upgrade()
    if before == after:
        console.print(f"database already at revision {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


@app.command()
def status() -> None:
    """Show the database URL, its schema revision and row counts."""
    state = commands.db_status()
    console.print(f"database: {state['url']}")
    console.print(f"revision: {state['revision'] or 'none (empty)'}   newest: {state['head']}"
                  + ("" if state["up_to_date"] else "   [yellow](run `seqrec db upgrade`)[/]"))
    for table, count in state.get("rows", {}).items():
        console.print(f"  {table:<10} {count:>8}")
