"""``custsync dlq``: the dead letters, listed and replayed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click
import msgspec

from application.sync.dead_letters import DEFAULT_LIMIT, MAX_LIMIT
from domain.dead_letters import DeadLetter
from entrypoints.cli.root import main, with_backends


@main.group()
def dlq() -> None:
    """Inspect and replay dead letters: syncs the worker gave up on.

    They are kept in the database; fix the cause (data, credentials, a bug), then replay them.
    """


@dlq.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include the letters already replayed.")
@click.option(
    "--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="How many, newest first."
)
@click.option("--json", "as_json", is_flag=True, help="JSON, as GET /api/v1/dead-letters returns it.")
def dlq_list(include_replayed: bool, limit: int, as_json: bool) -> None:
    """List dead letters, newest first.

    Only those waiting for a replay, unless --all. The error is cut to one line here; --json has it whole.
    """
    from application.sync.dead_letters import list_dead_letters

    letters = with_backends(lambda c: list_dead_letters(c.uow_factory()(), limit, include_replayed))
    if as_json:
        from entrypoints.http.schemas import DeadLetterOut

        click.echo(msgspec.json.encode([DeadLetterOut.of(d) for d in letters]))
    elif letters:
        click.echo(_table(letters))
    else:
        click.echo("no dead letters" if include_replayed else "no dead letters waiting for a replay")


@dlq.command("replay")
@click.option(
    "--id", "ids", multiple=True, type=click.IntRange(min=1), metavar="ID", help="A dead letter to replay (repeatable)."
)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter not yet replayed.")
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    """Replay dead letters once their cause is fixed.

    Each goes back to the topic it came from, and the worker runs it again. Give --id (one or
    more) or --all. An id that is unknown or already replayed stops the command before anything
    is replayed. A letter that fails again comes back to the list.
    """
    from application.sync.dead_letters import replay_dead_letters
    from domain.errors import DeadLetterNotFound

    if bool(ids) == replay_all:
        raise click.UsageError("give either --id (one or more) or --all")
    try:
        replayed = with_backends(
            lambda c: replay_dead_letters(None if replay_all else list(ids), c.uow_factory(), c.publisher(), c.clock())
        )
    except DeadLetterNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if replayed:
        click.echo(f"replayed {len(replayed)} dead letter(s): {', '.join(map(str, replayed))}")
    else:
        click.echo("nothing to replay")


def _table(letters: list[DeadLetter]) -> str:
    rows = [("ID", "TOPIC", "EVENT ID", "DIED AT (UTC)", "REPLAYED AT (UTC)", "ERROR")]
    rows += [
        (str(d.id), d.topic, d.event_id, _when(d.created_at), _when(d.replayed_at) if d.replayed_at else "-", short(d.error))
        for d in letters
    ]
    return "\n".join(table(rows))


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as aligned columns; the last column, the long one, is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in rows]


def short(error: str, width: int = 80) -> str:
    line = " ".join(error.split())  # one line, whatever the error held
    return line if len(line) <= width else line[: width - 3] + "..."
