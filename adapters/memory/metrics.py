"""The metrics port kept in plain counters, for tests to read (``application.ports.SyncMetrics``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from domain.sync import Handled


class InMemoryMetrics:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.latencies: list[tuple[str, str, float]] = []  # (direction, system, seconds)

    def handled(self, topic: str, handled: Handled) -> None:
        self.counts["delivered", topic, handled.outcome.value] += 1
        if handled.latency is not None:
            self.latencies.append((handled.direction.value, handled.system, handled.latency))

    def retried(self, topic: str, failure: str) -> None:
        self.counts["delivered", topic, "retried"] += 1
        self.counts["retried", topic, failure] += 1

    def dead_lettered(self, topic: str) -> None:
        self.counts["delivered", topic, "dead"] += 1

    def replayed(self, topic: str) -> None:
        self.counts["replayed", topic] += 1

    def caught_up(self, system: str, *, listed: int, published: int, failed: bool) -> None:
        self.counts["catch-up", system, "failed" if failed else "ok"] += 1
        self.counts["catch-up listed", system] += listed
        self.counts["catch-up published", system] += published

    def reconciled(self, system: str, status: str, counts: Mapping[str, int]) -> None:
        self.counts["reconcile", system, status] += 1
        for kind, n in counts.items():
            self.counts["reconcile found", system, kind] += n
