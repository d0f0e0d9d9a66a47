"""What comparing one page of a reconcile run finds, phase by phase: pure of scheduling, fixing
and checkpoints (``run.py`` stores each page's findings with its checkpoint). Each reads what it
needs in the run's unit of work and decides through the rules of ``domain.drift``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from application.ports import CREATE_IN_FLIGHT, SeenExternal, UnitOfWork
from domain.drift import Finding, FindingKind, Fix, MatchBy, ReconcileRun, compare_linked, email_key, email_match
from domain.messages import ExternalCustomer
from domain.ownership import proves_own_create

EXTERNAL_PAGE = 100  # the largest page external lists give (Stripe: 100)
CATALOG_PAGE = 500


class Listed(msgspec.Struct, frozen=True):
    """What one page of the external list came to."""

    findings: list[Finding]
    seen: list[SeenExternal]  # records linked to nothing here, kept for the later phases
    in_sync: int
    differing: dict[str, ExternalCustomer]  # the records a fix refreshes from (as listed)


class Paged(msgspec.Struct, frozen=True):
    """What one page of a later phase came to: its findings, and where the phase goes on from."""

    findings: list[Finding]
    done: bool  # the phase is over
    checkpoint: str | None  # where its next page starts (None when done)
    in_sync: int | None = None  # counted by the phases that find customers in sync


# -- phase 1: the external list -------------------------------------------------------------------
async def compare_listed(
    uow: UnitOfWork, run: ReconcileRun, installation: str, records: list[ExternalCustomer], now: datetime
) -> Listed:
    """Each listed record against the catalog customer it is linked to; the unlinked ones are kept
    (``seen``) for the later phases, but a record claiming a customer of this installation is
    never a candidate: linked by the worker if our create made it, else reported."""
    system = run.system
    findings: list[Finding] = []
    seen: list[SeenExternal] = []
    differing_records: dict[str, ExternalCustomer] = {}
    # In sync (nearly every link) is told where the data is; the rest is read and classified.
    linked, differing = await uow.reconcile.linked_in_page(run.id, system, records)
    in_sync = len(linked) - len(differing)
    mappings = await uow.mappings.by_external_ids(system, sorted(differing)) if differing else {}
    customers = await uow.customers.get_many([m.customer_id for m in mappings.values()]) if mappings else {}
    for x in records:
        subject = f"external:{x.external_id}"
        if x.external_id in linked:
            mapping = mappings.get(x.external_id)
            customer = customers.get(mapping.customer_id) if mapping is not None else None
            if mapping is None or customer is None:
                continue  # in sync (or unlinked since: the other phases see it)
            kind, fix, fields, detail = compare_linked(customer, mapping, x)
            if kind is FindingKind.IN_SYNC:
                in_sync += 1
                continue
            differing_records[x.external_id] = x
            findings.append(
                Finding.found(
                    run.id,
                    subject,
                    kind,
                    fix,
                    now,
                    customer_id=customer.id,
                    external_id=x.external_id,
                    fields=fields,
                    detail=detail,
                )
            )
            continue
        claim = x.claim
        if claim.installation == installation and claim.internal_id is not None:
            seen.append(SeenExternal(x.external_id))  # never a candidate for import or matching
            intent = await uow.create_intents.get(claim.internal_id, system)
            if proves_own_create(claim, installation, intent):
                kind, detail = FindingKind.ONLY_THERE, "made by our create, not linked yet: the worker links it"
            else:
                kind, detail = (
                    FindingKind.AMBIGUOUS,
                    (
                        f"its metadata claims catalog customer {claim.internal_id} of this installation without proof "
                        "(a restored database?): neither linked nor imported; link it by hand"
                    ),
                )
            findings.append(
                Finding.found(
                    run.id, subject, kind, Fix.NONE, now, customer_id=claim.internal_id, external_id=x.external_id, detail=detail
                )
            )
            continue
        seen.append(SeenExternal(x.external_id, x))  # decided once the catalog was read
    return Listed(findings, seen, in_sync, differing_records)


# -- phase 2: links the list did not show -----------------------------------------------------------
async def missing_links(uow: UnitOfWork, run: ReconcileRun, now: datetime) -> Paged:
    """A link whose record the list left out: deleted there, or unknown to the account. Re-fetched
    (a deletion it proves is carried; a 404 breaks the link), or reported if broken already."""
    system = run.system
    after = int(run.checkpoint) if run.checkpoint else None
    assert run.started_at is not None  # a claimed run has started
    findings: list[Finding] = []
    in_sync = 0
    links = await uow.reconcile.unseen_links(run.id, system, run.started_at, after, CATALOG_PAGE)
    customers = await uow.customers.get_many([m.customer_id for m in links])
    for mapping in links:
        customer = customers.get(mapping.customer_id)
        if customer is None or customer.deleted:
            in_sync += 1  # deleted on both sides (lists leave deleted records out)
            continue
        if mapping.broken is not None:
            fix, detail = Fix.NONE, f"the link is broken: {mapping.broken}"
        else:
            fix, detail = (
                Fix.REFRESH,
                f"not listed by {system}: re-fetched (deleted there: deleted here; unknown there: the link breaks)",
            )
        findings.append(
            Finding.found(
                run.id,
                f"customer:{mapping.customer_id}",
                FindingKind.MISSING_THERE,
                fix,
                now,
                customer_id=customer.id,
                external_id=mapping.external_id,
                detail=detail,
            )
        )
    done = len(links) < CATALOG_PAGE
    return Paged(findings, done, None if done else str(links[-1].customer_id), in_sync=in_sync)


# -- phase 3: catalog customers linked to nothing there ---------------------------------------------
async def unlinked_customers(uow: UnitOfWork, run: ReconcileRun, now: datetime) -> Paged:
    """A catalog customer never pushed there: exported; linked to its one email match on a first
    sync (``domain.drift.email_match``); reported when that would be a guess. A customer whose
    record is on its way (a create in flight) or claimed is never linked to another record."""
    system = run.system
    after = int(run.checkpoint) if run.checkpoint else None
    assert run.started_at is not None  # a claimed run has started
    findings: list[Finding] = []

    def found(
        subject: str,
        kind: FindingKind,
        fix: Fix,
        customer_id: int,
        external_id: str | None,
        detail: str,
        fields: tuple[str, ...] = (),
    ) -> None:
        findings.append(
            Finding.found(
                run.id, subject, kind, fix, now, customer_id=customer_id, external_id=external_id, fields=fields, detail=detail
            )
        )

    customers = await uow.reconcile.unlinked_customers(system, run.started_at, after, CATALOG_PAGE)
    keys = sorted({k for c in customers if (k := email_key(c.email)) is not None})
    there = await uow.reconcile.unlinked_seen(run.id, keys)
    here = await uow.reconcile.unlinked_customer_ids(system, keys)
    held = await uow.reconcile.held_back(run.id, system, [c.id for c in customers])
    set_aside: list[str] = []
    for customer in customers:
        key = email_key(customer.email)
        candidates = there.get(key, []) if key else []
        reason = held.get(customer.id)
        if reason is not None:
            # Never linked to another record: a record there is, or is being made, this customer.
            # Its namesakes there are not imported either. A create in flight (or given up:
            # dead-lettered) is sent again -- the same create under its own key, which Stripe
            # answers with the customer it made; a claimed one is not.
            if candidates:
                set_aside += [x.external_id for x in candidates]
                ids_there = ", ".join(x.external_id for x in candidates)
                found(
                    f"email:{key}",
                    FindingKind.AMBIGUOUS,
                    Fix.NONE,
                    customer.id,
                    candidates[0].external_id,
                    f"catalog {customer.id} ({reason}) and {system} {ids_there} share {key}: "
                    "neither linked nor imported; a person decides",
                    ("email",),
                )
            if reason == CREATE_IN_FLIGHT:
                found(
                    f"customer:{customer.id}",
                    FindingKind.ONLY_HERE,
                    Fix.EXPORT,
                    customer.id,
                    None,
                    f"{reason}: sent again, the same create under its key (never a second customer)",
                )
            elif not candidates:
                found(f"customer:{customer.id}", FindingKind.ONLY_HERE, Fix.NONE, customer.id, None, f"{reason}: not exported")
            continue
        if not candidates:
            found(
                f"customer:{customer.id}",
                FindingKind.ONLY_HERE,
                Fix.EXPORT,
                customer.id,
                None,
                f"never pushed to {system}: created there",
            )
            continue
        namesakes = here.get(key, [customer.id]) if key else [customer.id]
        set_aside += [x.external_id for x in candidates]
        match = email_match(run.match_by, candidates, namesakes)
        if match is not None:
            found(
                f"customer:{customer.id}",
                FindingKind.ONLY_HERE,
                Fix.LINK,
                customer.id,
                match.external_id,
                f"the one {system} record with its email: linked",
                tuple(sorted(customer.data.changed_fields(match.data))),
            )
            continue
        ids_there = ", ".join(x.external_id for x in candidates)
        ids_here = ", ".join(str(i) for i in namesakes)
        how = (
            "--match-by email links one-to-one matches only"
            if run.match_by is MatchBy.EMAIL
            else "neither imported nor exported, so that no one is duplicated: `--match-by email` links a one-to-one match"
        )
        found(
            f"email:{key}",
            FindingKind.AMBIGUOUS,
            Fix.NONE,
            customer.id,
            candidates[0].external_id,
            f"catalog {ids_here} and {system} {ids_there} share {key}: {how}; a person decides",
            ("email",),
        )
    await uow.reconcile.decide(run.id, set_aside)
    done = len(customers) < CATALOG_PAGE
    return Paged(findings, done, None if done else str(customers[-1].id))


# -- phase 4: external records linked to nothing here -----------------------------------------------
async def unlinked_records(uow: UnitOfWork, run: ReconcileRun, now: datetime) -> Paged:
    """What no catalog customer matched: imported."""
    records = await uow.reconcile.undecided(run.id, run.checkpoint, EXTERNAL_PAGE)
    findings = [
        Finding.found(
            run.id,
            f"external:{x.external_id}",
            FindingKind.ONLY_THERE,
            Fix.IMPORT,
            now,
            external_id=x.external_id,
            detail="linked to no catalog customer: imported",
        )
        for x in records
    ]
    done = len(records) < EXTERNAL_PAGE
    return Paged(findings, done, None if done else records[-1].external_id)
