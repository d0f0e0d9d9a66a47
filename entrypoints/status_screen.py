"""``custsync status``: the status report (``application.status``) as one screen of text."""

from __future__ import annotations

from datetime import datetime

from application.status import IntegrationStatus, StatusReport


def render(report: StatusReport) -> str:
    lines = [f"custsync status at {report.at:%Y-%m-%d %H:%M:%S} UTC", ""]
    oldest = f", oldest {_age(report, report.outbox_oldest)}" if report.outbox_oldest else ""
    lines.append(f"outbox        {report.outbox_backlog} change(s) not yet published{oldest}")
    if report.lag is None:
        lines.append(f"consumer lag  unknown: {report.lag_error}")
    else:
        per_group = [f"{_topics(lag)} to {group} {sum(lag.values())}" for group, lag in report.lag.items()]
        lines.append("consumer lag  " + (", ".join(per_group) or "no partitions"))
    waiting = sum(report.dead_letters_waiting.values())
    detail = ", ".join(f"{t} {n}" for t, n in sorted(report.dead_letters_waiting.items()))
    lines.append(f"dead letters  {waiting} waiting" + (f" ({detail}): `custsync dlq list`" if waiting else ""))
    for system in report.integrations:
        lines += ["", *_integration(report, system)]
    return "\n".join(lines)


def _topics(lag: dict[str, int]) -> str:
    return "/".join(sorted({where.rpartition(":")[0] for where in lag})) or "nothing"


def _integration(report: StatusReport, s: IntegrationStatus) -> list[str]:
    a = s.activity
    rate = (
        "no changes in the last hour"
        if s.error_rate is None
        else f"{s.error_rate:.1%} of the last hour's {a.settled + a.failing} change(s) failing"
    )
    drift = ", ".join(f"{k} {n}" for k, n in s.out_of_sync.items() if n) or "none"
    lines = [
        f"{s.system}",
        f"  last success    out {_age(report, a.last_outbound)}, in {_age(report, a.last_inbound)}",
        f"  oldest pending  {_age(report, a.oldest_unsettled) if a.oldest_unsettled else 'none'}",
        f"  outbound lag    {_lag(report, s.system)}",
        f"  error rate      {rate}",
    ]
    if a.last_error is not None:
        lines.append(f"  last error      {_age(report, a.last_error_at)}: {a.last_error.splitlines()[0][:200]}")
    lines.append(f"  not in sync     {drift}")
    lines.append(f"  last catch-up   {_age(report, s.last_catch_up) if s.last_catch_up else 'never'}")
    run = s.last_reconcile
    if run is None:
        lines.append("  last reconcile  never")
    else:
        found = ", ".join(f"{k} {n}" for k, n in sorted(run.counts.items())) or "nothing counted"
        when = _age(report, run.finished_at or run.created_at)
        lines.append(f"  last reconcile  #{run.id} {run.status.value}{' (dry run)' if run.dry_run else ''}, {when}: {found}")
        if run.error:
            lines.append(f"                  {run.error.splitlines()[0][:200]}")
    return lines


def _lag(report: StatusReport, system: str) -> str:
    if report.lag is None:
        return "unknown"
    if system not in report.lag:
        return "no group"
    return f"{sum(report.lag[system].values())} change(s) not yet taken"


def _age(report: StatusReport, at: datetime | None) -> str:
    if at is None:
        return "never"
    seconds = max(0, int((report.at - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
