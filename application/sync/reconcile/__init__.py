"""Reconcile: compare every catalog customer with every record of one external system, report
what differs (``domain.drift``), and fix it through the paths live changes take.

A run reads the external system's strongly consistent list once, page by page (never its search
index), in four phases, each with a checkpoint stored with the run:

1. ``external``: each listed record is compared with the catalog customer it is linked to; the
   unlinked ones are kept in the run's working set (``reconcile_seen``), the page is checkpointed.
2. ``missing``: links whose record the list did not show (deleted there, or unknown to the account).
3. ``catalog``: catalog customers linked to nothing there: exported, linked to their one email
   match (``--match-by email``), or reported as ambiguous.
4. ``unlinked``: external records nothing matched: imported.

Fixes are journaled as findings: found (``planned``) and checkpointed first, then applied and
marked, each in the same transaction as its effect where the effect is a database write (an
outbox event, a link), or under an event id of the run's own where it goes through the inbound
use case (the inbox applies an event id once). So a run interrupted anywhere and resumed applies
every fix exactly once. Outages are waited out; a run whose runner died is taken over.

The modules: ``runs`` (asking for, claiming and scheduling runs; the worker's runner),
``run`` (one run, phase by phase, with its checkpoints), ``comparison`` (what a page finds) and
``fixes`` (applying what was found).
"""

from application.sync.reconcile.run import Reconciler, RunLost
from application.sync.reconcile.runs import (
    OtherRunActive,
    RunInProgress,
    claim_next,
    request_run,
    run_reconciler,
    schedule_due,
    start_here,
)

__all__ = [
    "OtherRunActive",
    "Reconciler",
    "RunInProgress",
    "RunLost",
    "claim_next",
    "request_run",
    "run_reconciler",
    "schedule_due",
    "start_here",
]
