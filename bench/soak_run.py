"""The soak's driver (run it through bench/soak, which provisions the services first)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.infra import migrate, recreate_database, reset_topics
from tests.support.processes import Processes, base_env
from tests.support.soak import Soak, kafka_outage, postgres_outage, stripe_outage
from tests.support.stripe_server import StripeServer, free_port

SECRET = "whsec_soak"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of Stripe calls answered 429/500")
    parser.add_argument("--kill-every", type=int, default=1500, help="SIGKILL a worker every N operations (0: never)")
    parser.add_argument("--max-rps", type=int, default=500, help="STRIPE_MAX_RPS per worker (the test server is local)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--outage",
        choices=["none", "stripe", "postgres", "kafka"],
        default="none",
        help="take one system down while the operations run (spread over the outage), then bring it back",
    )
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--converge-timeout", type=float, default=900)
    return parser.parse_args()


def outage(args: argparse.Namespace, server: StripeServer):
    return {
        "none": lambda: None,
        "stripe": lambda: stripe_outage(server, args.outage_seconds),
        "postgres": lambda: postgres_outage(args.outage_seconds),
        "kafka": lambda: kafka_outage(args.outage_seconds),
    }[args.outage]()


async def main(args: argparse.Namespace) -> int:
    kafka = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    database_url = await recreate_database(os.environ["TEST_DATABASE_URL"], "custsync_soak")
    migrate(database_url, kafka)
    await reset_topics(kafka, partitions=6)
    logs = Path(tempfile.mkdtemp(prefix="custsync-soak-"))
    with StripeServer(fault_rate=args.fault_rate, seed=args.seed) as server:
        env = {
            **base_env(),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_PARTITIONS": "6",
            "KAFKA_GROUP_ID": f"custsync-soak-{uuid.uuid4().hex[:8]}",
            "STRIPE_SECRET_KEY": "sk_test_soak",
            "STRIPE_API_BASE": server.url,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_MAX_RPS": str(args.max_rps),
            "WORKER_MAX_ATTEMPTS": "10",
            "LOG_LEVEL": "WARNING",
            "API_TOKEN": "soak-api-token",
        }
        processes = Processes(env, logs)
        try:
            soak = Soak(
                processes=processes,
                server=server,
                api_url=f"http://127.0.0.1:{free_port()}",
                database_url=database_url,
                secret=SECRET,
                customers=args.customers,
                operations=args.operations,
                workers=args.workers,
                kill_every=args.kill_every,
                seed=args.seed,
                outage=outage(args, server),
            )
            report = await soak.run(converge_timeout=args.converge_timeout)
        finally:
            processes.stop_all()
    print(f"custsync soak (seed {args.seed}, {args.workers} workers, fault rate {args.fault_rate:.0%}, logs in {logs})")
    for line in report.lines():
        print(f"  {line}")
    ops = max(report.operations, 1)
    print(f"  Stripe calls per operation           {report.stripe_calls / ops:.2f}")
    if report.converge_seconds is not None and report.ops_seconds:
        print(f"  convergence time / operations time   {report.converge_seconds / report.ops_seconds:.2f}")
    healthy = not report.divergences and report.dead_letters == 0 and not report.process_exits
    return 0 if report.converge_seconds is not None and healthy else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(arguments())))
