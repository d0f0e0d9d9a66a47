"""What a deployment runs once first: ``migrate``, ``topics`` and ``init``. Each fails with one
line when PostgreSQL or Kafka is not there, as every other command does."""

from __future__ import annotations

import logging

import click

from entrypoints.cli.root import main, one_line, quiet, read_settings, run, with_backends


@main.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to the newest schema."""
    settings = read_settings()
    if settings.uses_memory:
        raise click.ClickException("DATABASE_URL is not set: there is no database to migrate")
    from adapters.postgres.migrations import upgrade

    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # each migration applied, one line
    with one_line():
        upgrade(settings.database_url)
    click.echo("database migrated", err=True)


@main.command()
@click.option("--partitions", type=click.IntRange(1, 10_000), help="Partitions of each topic [default: KAFKA_PARTITIONS, 6].")
@click.option(
    "--replication-factor",
    type=click.IntRange(1, 100),
    help="Replicas of each topic, at most the number of brokers [default: KAFKA_REPLICATION_FACTOR, 1].",
)
def topics(partitions: int | None, replication_factor: int | None) -> None:
    """Create the sync topics and their dead-letter topics.

    Topics that exist already are left as they are (a partition count that differs is reported:
    changing it would move customers between partitions).
    """
    settings = read_settings()
    if settings.broker_backend == "memory":
        raise click.ClickException("KAFKA_BOOTSTRAP_SERVERS is not set: there is no broker to create topics on")
    from adapters.kafka.topics import ensure_topics

    partitions = partitions or settings.kafka_partitions
    replication_factor = replication_factor or settings.kafka_replication_factor
    with quiet("aiokafka"):  # its connection errors would repeat the one line below
        created = run(lambda: ensure_topics(settings.kafka_bootstrap_servers, partitions, replication_factor))
    click.echo(f"topics ready ({', '.join(created) or 'all existed'})", err=True)


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """`migrate`, then `topics`, then this installation's id: what a deployment runs once first."""
    ctx.invoke(migrate)
    ctx.invoke(topics)
    from application.accounts import ensure_installation

    installation = with_backends(lambda c: ensure_installation(c.uow_factory(), c.clock()), "the installation id")
    click.echo(f"installation {installation}", err=True)
