"""``custsync status``: the on-call screen."""

from __future__ import annotations

import click
import msgspec

from entrypoints.cli.root import main, quiet, with_backends


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON, as GET /api/v1/status returns it.")
def status(as_json: bool) -> None:
    """One screen for on-call: backlog, lag, dead letters, and per integration the last success,
    error rate and last error, customers not in sync, the last catch-up and reconcile."""
    from application.status import read_status
    from entrypoints.status_screen import render

    # The on-call screen works while Kafka is down (no producer needed): the lag reads as unknown, once.
    with quiet("aiokafka"):
        report = with_backends(
            lambda c: read_status(c.uow_factory(), c.integrations(), c.consumer_lag(), c.clock()),
            "status figures",
            publishing=False,
        )
    click.echo(msgspec.json.encode(report) if as_json else render(report))
