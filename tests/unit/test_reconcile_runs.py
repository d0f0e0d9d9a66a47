"""Reconcile on the in-memory adapters: every class of the report, every fix, dry runs, matching by
email, a second run finding nothing, and a run interrupted and resumed applying each fix once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from adapters.memory.metrics import InMemoryMetrics
from application.commands import CreateCustomer, DeleteCustomer, PatchCustomer
from application.customers.create import create_customer
from application.customers.delete import delete_customer
from application.customers.update import patch_customer
from application.sync.reconcile import Reconciler, RunInProgress, start_here
from domain.conflicts import ConflictPolicy
from domain.customer import CustomerData
from domain.drift import FindingKind, Fix, FixStatus, MatchBy, Phase, RunStatus
from domain.messages import OUTBOUND_TOPIC
from entrypoints.settings import Settings
from tests.support.system import WEBHOOK_SECRET, EmbeddedSystem, tagged


async def reconcile(system, *, dry_run=False, match_by=None, owner="test", stopping=None, progress=None, dead=False):
    ctx = await system.context()
    run, _ = await start_here(
        ctx, "stripe", owner, dry_run=dry_run, match_by=match_by, trigger="cli", presumed_dead=lambda other: dead
    )
    integration = system.container.stripe()
    return await Reconciler(
        run, integration, system.container.integrations(), ctx, stopping=stopping, progress=progress
    ).execute()


async def findings(system, run):
    async with system.uow_factory() as uow:
        return await uow.reconcile.findings(run.id, after=None, limit=10_000)


async def before_install(system, stripe=(), catalog=()):
    """Customers present on each side before custsync ran: none of them ever synced."""
    made = []
    for name, email in stripe:
        made.append((await system.stripe.create_async(params={k: v for k, v in (("name", name), ("email", email)) if v}))["id"])
    ids = []
    async with system.uow_factory() as uow:
        for name, email in catalog:
            ids.append((await uow.customers.add(CustomerData(name, email), system.clock.now())).id)
        await uow.commit()
    system.delivered = len(system.stripe.events)  # their events were never delivered (no endpoint yet)
    if hasattr(system.clock, "advance"):
        system.clock.advance(1)
    return made, ids


async def catalog(system):
    async with system.uow_factory() as uow:
        return list(await uow.customers.page(after_id=None, limit=10_000))


async def assert_converged(system):
    """Every catalog customer linked to one live Stripe customer holding the same data, and back."""
    customers = await catalog(system)
    linked = {}
    for c in customers:
        m = await system.mapping(c.id)
        assert m is not None, f"customer {c.id} is not linked"
        held = system.stripe.customers[m.external_id]
        assert CustomerData(held["name"], held["email"]) == c.data
        assert held["metadata"]["internal_id"] == str(c.id)
        linked[m.external_id] = c.id
    assert set(linked) == set(system.stripe.customers)


async def test_nothing_on_either_side_is_a_run_with_nothing_to_report(system):
    run = await reconcile(system)
    assert run.status is RunStatus.DONE and run.phase is Phase.DONE
    assert await findings(system, run) == []


async def test_a_first_sync_imports_what_only_stripe_has_and_exports_what_only_the_catalog_has(system):
    stripe_ids, _catalog_ids = await before_install(
        system, stripe=[("Ada", "ada@example.com")], catalog=[("Bob", "bob@example.com")]
    )
    run = await reconcile(system)
    kinds = Counter(f.kind for f in await findings(system, run))
    assert kinds == {FindingKind.ONLY_THERE: 1, FindingKind.ONLY_HERE: 1}
    assert run.counts["fix_applied"] == 2
    await system.settle()
    await assert_converged(system)
    [ada] = [c for c in await catalog(system) if c.name == "Ada"]
    # The imported one got our metadata written back.
    assert tagged(system.stripe.customers[stripe_ids[0]]["metadata"]) == await system.tags(ada.id)
    again = await reconcile(system)
    assert await findings(system, again) == [] and again.counts.get("in_sync") == 2


async def test_a_dry_run_reports_and_changes_nothing(system):
    await before_install(system, stripe=[("Ada", "ada@example.com")], catalog=[("Bob", "bob@example.com")])
    outbox_before = len(system.messages(OUTBOUND_TOPIC))
    calls_before = Counter(method for method, _ in system.stripe.calls)
    run = await reconcile(system, dry_run=True)
    found = await findings(system, run)
    assert {f.fix_status for f in found} == {FixStatus.PLANNED}
    await system.settle()
    assert len(system.messages(OUTBOUND_TOPIC)) == outbox_before
    assert [c.name for c in await catalog(system)] == ["Bob"] and len(system.stripe.customers) == 1
    assert Counter(method for method, _ in system.stripe.calls) - calls_before == {"list": 1}  # reads only


async def test_match_by_email_links_one_to_one_matches_and_reports_every_ambiguous_case(system):
    stripe_ids, catalog_ids = await before_install(
        system,
        stripe=[
            ("Ada", "ADA@example.com"),
            ("Bo", "bo@example.com"),
            ("Bo twin", "bo@example.com"),
            ("Cy", "cy@example.com"),
            (None, "dee@example.com"),
        ],
        catalog=[
            ("Ada Lovelace", "ada@example.com"),
            ("Bo", "bo@example.com"),
            ("Cy", "cy@example.com"),
            ("Cy again", "cy@example.com"),
            ("Dee", "dee@example.com"),
        ],
    )
    run = await reconcile(system, match_by=MatchBy.EMAIL)
    found = await findings(system, run)
    links = [f for f in found if f.fix is Fix.LINK]
    ambiguous = [f for f in found if f.kind is FindingKind.AMBIGUOUS]
    assert len(links) == 2 and {f.customer_id for f in links} == {catalog_ids[0], catalog_ids[4]}
    assert sorted(f.subject for f in ambiguous) == ["email:bo@example.com", "email:cy@example.com"]
    assert run.counts["ambiguous"] == 2
    await system.settle()
    # Never merged, never duplicated: the ambiguous ones are left on their sides as they were.
    assert len(system.stripe.customers) == 5 and len(await catalog(system)) == 5
    ada = await system.customer(catalog_ids[0])
    assert ada.data == CustomerData("Ada Lovelace", "ada@example.com")  # the catalog (the hub) keeps its values...
    held = system.stripe.customers[stripe_ids[0]]
    assert (held["name"], held["email"]) == ("Ada Lovelace", "ada@example.com")
    assert tagged(held["metadata"]) == await system.tags(ada.id)
    dee = system.stripe.customers[stripe_ids[4]]
    assert dee["name"] == "Dee"  # ...and a field empty on one side takes the other's value
    again = await reconcile(system, match_by=MatchBy.EMAIL)
    assert Counter(f.kind for f in await findings(system, again)) == {FindingKind.AMBIGUOUS: 2}


async def test_without_matching_a_shared_email_is_reported_and_nobody_is_duplicated(system):
    await before_install(system, stripe=[("Ada", "ada@example.com")], catalog=[("Ada", "ada@example.com")])
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert finding.kind is FindingKind.AMBIGUOUS and "--match-by email" in finding.detail
    await system.settle()
    assert len(system.stripe.customers) == 1 and len(await catalog(system)) == 1


@pytest.mark.parametrize("policy", list(ConflictPolicy))
async def test_a_stripe_side_change_whose_webhook_was_lost_is_applied(policy, clock):
    system = EmbeddedSystem(Settings(stripe_webhook_secret=WEBHOOK_SECRET, conflict_policy=policy), clock=clock)
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await system.stripe.update_async(external_id, params={"name": "Ada L."})
    system.delivered = len(system.stripe.events)  # the webhook never arrived
    clock.advance(5)
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.kind, finding.fields, finding.fix_status) == (FindingKind.DIFFERS, ("name",), FixStatus.APPLIED)
    assert "name: changed there" in finding.detail
    await system.settle()
    assert (await system.customer(customer.id)).name == "Ada L."
    assert await findings(system, await reconcile(system)) == []


async def test_a_catalog_change_that_never_reached_stripe_is_sent_again(system):
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    async with system.uow_factory() as uow:  # a manual SQL fix: no outbox event
        current = await uow.customers.get(customer.id)
        await uow.customers.save(current.revised(CustomerData("Ada L.", "ada@example.com"), system.clock.now()))
        await uow.commit()
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert finding.kind is FindingKind.DIFFERS and "name: changed here" in finding.detail
    await system.settle()
    held = system.stripe.customers[(await system.mapping(customer.id)).external_id]
    assert held["name"] == "Ada L."


async def test_a_deletion_in_stripe_whose_webhook_was_lost_deletes_here_too(system):
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    await system.stripe.delete_async((await system.mapping(customer.id)).external_id)
    system.delivered = len(system.stripe.events)
    system.clock.advance(1)
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.kind, finding.fix, finding.fix_status) == (FindingKind.MISSING_THERE, Fix.REFRESH, FixStatus.APPLIED)
    assert (await system.customer(customer.id)).deleted


async def test_a_link_stripe_does_not_know_breaks_and_the_customer_stays(system):
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    del system.stripe.customers[external_id]  # another account's id, a restored database: a 404
    system.clock.advance(1)
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.kind, finding.fix_status) == (FindingKind.MISSING_THERE, FixStatus.FAILED)
    current = await system.customer(customer.id)
    assert not current.deleted and current.name == "Ada"
    assert (await system.mapping(customer.id)).broken is not None
    again = await reconcile(system)
    [finding] = await findings(system, again)
    assert (finding.fix, "broken" in finding.detail) == (Fix.NONE, True)


async def test_a_customer_deleted_here_whose_deletion_never_reached_stripe_is_deleted_there(system):
    customer = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    external_id = (await system.mapping(customer.id)).external_id
    await delete_customer(DeleteCustomer(customer_id=customer.id), system.uow_factory(), system.clock)
    async with system.uow_factory() as uow:  # its event was lost (a restored broker, a bug)
        pending = await uow.relay.claim(10)
        await uow.relay.mark_published([p.position for p in pending], system.clock.now())
        await uow.commit()
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.kind, finding.fields, finding.fix) == (FindingKind.DIFFERS, ("deleted",), Fix.PUSH)
    await system.settle()
    assert external_id in system.stripe.deleted


async def test_a_record_claiming_one_of_our_customers_without_proof_is_left_for_a_person(system):
    _, [bob] = await before_install(system, catalog=[("Bob", "bob@example.com")])
    await system.stripe.create_async(
        params={"name": "Bob?", "metadata": {"internal_id": str(bob), "custsync_installation": await system.installation()}}
    )
    system.delivered = len(system.stripe.events)
    run = await reconcile(system)
    kinds = {f.kind: f for f in await findings(system, run)}
    assert "without proof" in kinds[FindingKind.AMBIGUOUS].detail
    await system.settle()
    assert len(await catalog(system)) == 1  # not imported (it would duplicate Bob), not linked (unproven)


async def test_an_interrupted_run_resumes_from_its_checkpoint_and_applies_each_fix_once(system):
    await before_install(
        system,
        stripe=[(f"S{i}", f"s{i}@example.com") for i in range(250)],
        catalog=[(f"C{i}", f"c{i}@example.com") for i in range(30)],
    )
    installed = len(system.stripe.calls)
    stopping = asyncio.Event()
    pages = []

    def stop_after_two_pages(run):
        pages.append(run.phase)
        if len(pages) == 2:
            stopping.set()

    first = await reconcile(system, stopping=stopping, progress=stop_after_two_pages)
    assert first.status is RunStatus.RUNNING and first.phase is Phase.EXTERNAL and first.checkpoint is not None
    with pytest.raises(RunInProgress):
        await reconcile(system, owner="another")  # its runner may still be alive
    resumed = await reconcile(system, owner="another", dead=True)
    assert resumed.id == first.id and resumed.status is RunStatus.DONE
    assert resumed.counts["external_listed"] == 250 and resumed.counts["fix_applied"] == 280
    await system.settle()
    await assert_converged(system)
    assert len(system.stripe.customers) == 280
    events = Counter(m.key for m in system.messages(OUTBOUND_TOPIC))
    assert len(events) == 280 and set(events.values()) == {1}  # one import or export each: no fix applied twice
    assert len([key for method, key in system.stripe.calls[installed:] if method == "create"]) == 30
    assert await findings(system, await reconcile(system)) == []


async def test_a_first_sync_starts_catch_up_where_its_list_started_and_a_dry_run_does_not(system):
    """Run before the worker ever polled: the changes between the run's list and the first poll are
    read back from the run's start; a dry run (changing nothing) leaves catch-up alone, and a
    cursor catch-up already keeps is never moved."""
    await before_install(system, stripe=[("Ada", "ada@example.com")])
    await reconcile(system, dry_run=True)
    async with system.uow_factory() as uow:
        assert await uow.cursors.get("stripe", "changes") is None
    started = system.clock.now()
    run = await reconcile(system)
    async with system.uow_factory() as uow:
        cursor = await uow.cursors.get("stripe", "changes")
    assert (
        run.started_at == started
        and cursor is not None
        and cursor.position == f"{int(started.timestamp())}/{int(started.timestamp())}"
    )
    assert cursor.leased_by is None  # given back at once
    system.clock.advance(3600)
    await reconcile(system)
    async with system.uow_factory() as uow:
        assert (await uow.cursors.get("stripe", "changes")).position == cursor.position


async def dead_letters(system):
    async with system.uow_factory() as uow:
        return await uow.dead_letters.list(100)


async def test_a_case_left_ambiguous_is_held_from_live_import_and_export_until_a_person_decides(system):
    """After a run reports a shared email as ambiguous, a later edit on either side must not make the
    person twice (live sync does not match by email): the import and the export wait as dead
    letters; once linked (`--match-by email`), their replay applies to the pair."""
    [stripe_id], [customer_id] = await before_install(
        system, stripe=[("Ada", "ada@example.com")], catalog=[("Ada", "ada@example.com")]
    )
    await reconcile(system)  # no matching: ambiguous
    await system.stripe.update_async(stripe_id, params={"name": "Ada (Stripe)"})
    await patch_customer(
        PatchCustomer(customer_id=customer_id, changes={"name": "Ada (catalog)"}), system.uow_factory(), system.clock
    )
    await system.settle()
    assert len(system.stripe.customers) == 1 and len(await catalog(system)) == 1  # nobody twice
    letters = await dead_letters(system)
    assert sorted(letter.error.split(":")[0] for letter in letters) == ["AmbiguousExport", "AmbiguousImport"], letters

    run = await reconcile(system, match_by=MatchBy.EMAIL)
    assert [f.fix for f in await findings(system, run)] == [Fix.LINK]
    await replay_all(system)
    await system.settle()
    assert await dead_letters(system) == []
    assert len(system.stripe.customers) == 1 and len(await catalog(system)) == 1
    await assert_converged(system)


async def test_without_an_ambiguous_finding_a_namesake_is_imported_as_before(system):
    """The hold needs a person-facing ambiguous case: an ordinary race (a customer made through the API
    and one made in Stripe with the same email, before either synced) imports, as emails are not
    unique in Stripe."""
    await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.stripe.create_async(params={"name": "Ada", "email": "ada@example.com"})
    await system.settle()
    assert len(system.stripe.customers) == 2 and len(await catalog(system)) == 2
    assert await dead_letters(system) == []


async def replay_all(system):
    from application.sync.dead_letters import replay_dead_letters

    c = system.container
    await replay_dead_letters(None, c.uow_factory(), c.publisher(), system.clock)


async def test_the_worker_schedules_a_drift_check_every_interval_and_runs_it(system):
    """RECONCILE_INTERVAL: the runner queues a run (fixes on, no matching) whenever the last one is
    older than the interval, and executes it; the first one heals what webhooks missed."""
    from datetime import timedelta

    from application.sync.reconcile import run_reconciler

    await before_install(system, stripe=[("Only there", None)])
    start, stopping = system.clock.now(), asyncio.Event()

    async def context():
        return await system.context()

    async def stop_after_two_and_a_half_hours():
        for _ in range(100_000):
            if system.clock.now() >= start + timedelta(hours=2, minutes=30):
                break
            await asyncio.sleep(0)
        stopping.set()

    metrics = InMemoryMetrics()
    await asyncio.gather(
        run_reconciler(
            system.container.integrations(), context, system.clock, "worker", stopping, interval=3600, poll=60, metrics=metrics
        ),
        stop_after_two_and_a_half_hours(),
    )
    async with system.uow_factory() as uow:
        runs = await uow.reconcile.runs("stripe", 10)
    assert len(runs) == 3  # at 0, after 1 h and after 2 h
    assert metrics.counts["reconcile", "stripe", "done"] == 3  # each run counted once it ended
    assert metrics.counts["reconcile found", "stripe", "only_there"] == 1
    assert {(r.status, r.trigger, r.dry_run, r.match_by) for r in runs} == {(RunStatus.DONE, "schedule", False, None)}
    assert [r.counts.get("only_there", 0) for r in reversed(runs)] == [1, 0, 0]  # imported once, then in sync
    assert [c.name for c in await catalog(system)] == ["Only there"]


# -- found by review: each once a way to duplicate, drop or never settle ----------------------------


async def test_a_customer_a_record_claims_without_proof_is_neither_exported_nor_linked(system):
    """The restored-database case: a Stripe record's metadata names catalog customer 1 of this
    installation, but no create intent proves it. It is left for a person -- and so is customer 1:
    exporting it would make them twice in Stripe."""
    _, [bob] = await before_install(system, catalog=[("Bob", "bob@example.com")])
    await system.stripe.create_async(
        params={
            "name": "Bob",
            "email": "bob@example.com",
            "metadata": {"internal_id": str(bob), "custsync_installation": await system.installation()},
        }
    )
    system.delivered = len(system.stripe.events)
    for match_by in (None, MatchBy.EMAIL):
        run = await reconcile(system, match_by=match_by)
        found = {f.subject: f for f in await findings(system, run)}
        assert found[f"customer:{bob}"].fix is Fix.NONE and "claimed by" in found[f"customer:{bob}"].detail
        await system.settle()
        assert len(system.stripe.customers) == 1 and len(await catalog(system)) == 1


async def test_a_customer_whose_create_is_in_flight_is_not_linked_to_a_namesake_nor_its_namesake_imported(system):
    """Our create landed but its answer was lost (the worker retries it); Stripe also holds a
    namesake from before. Linking the customer to the namesake would orphan our create (then
    imported by its late webhook): the pair is reported, the create goes on."""
    from application.sync.creates import create_intent
    from domain.ownership import OwnershipTag

    [namesake], _ = await before_install(system, stripe=[("Ada S", "ada@example.com")])
    ada = await create_customer(CreateCustomer("Ada C", "ada@example.com"), system.uow_factory(), system.clock)
    ctx = await system.context()
    async with system.uow_factory() as uow:
        intent = await create_intent(uow, ada, "stripe", ctx)
    tag = OwnershipTag(internal_id=ada.id, installation=ctx.installation, create_key=intent.idempotency_key)
    await system.container.stripe().create_customer(intent.data, tag=tag, idempotency_key=intent.idempotency_key)
    system.delivered = len(system.stripe.events)
    system.clock.advance(1)
    run = await reconcile(system, match_by=MatchBy.EMAIL)
    found = {f.subject: f for f in await findings(system, run)}
    assert found["email:ada@example.com"].kind is FindingKind.AMBIGUOUS and "in flight" in found["email:ada@example.com"].detail
    assert not [f for f in found.values() if f.fix in (Fix.LINK, Fix.IMPORT)]
    assert found[f"customer:{ada.id}"].fix is Fix.EXPORT  # the same create again, under its key: never a second
    system.clock.advance(5)
    system.delivered -= 1  # the create's late webhook
    await system.settle()
    assert [c.name for c in await catalog(system)] == ["Ada C"]
    assert (await system.mapping(ada.id)).external_id != namesake  # linked to its own create
    assert system.stripe.customers[namesake]["name"] == "Ada S" and len(system.stripe.customers) == 2


async def test_a_page_whose_commit_failed_is_read_again_from_the_same_checkpoint(system, monkeypatch):
    import application.sync.reconcile.comparison as comparison
    import application.sync.reconcile.run as reconciling
    from application.errors import StorageUnavailable

    monkeypatch.setattr(comparison, "CATALOG_PAGE", 2)
    _, ids = await before_install(system, catalog=[(f"C{i}", f"c{i}@example.com") for i in range(6)])
    save, failed = reconciling.Reconciler._save, []

    async def save_then_lose_the_commit(self, uow, run):
        await save(self, uow, run)
        if run.phase is Phase.CATALOG and run.checkpoint == str(ids[3]) and not failed:
            failed.append(run.checkpoint)
            raise StorageUnavailable("connection lost during COMMIT")

    monkeypatch.setattr(reconciling.Reconciler, "_save", save_then_lose_the_commit)
    run = await reconcile(system)
    assert failed and run.status is RunStatus.DONE
    assert (run.counts["only_here"], run.counts["fix_applied"]) == (6, 6)
    await system.settle()
    assert [c.id for c in await catalog(system) if await system.mapping(c.id) is None] == []


async def test_under_latest_wins_a_conflict_whose_event_was_lost_for_good_is_settled_for_the_catalog(system):
    """Both sides changed the name; Stripe's event never came (older than catch-up's reach). Live
    sync would wait for it; a reconcile keeps the catalog's value (the hub) and converges."""
    ada = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    await system.settle()
    external_id = (await system.mapping(ada.id)).external_id
    system.clock.advance(10)
    await system.stripe.update_async(external_id, params={"name": "Ada (stripe)"})
    system.delivered = len(system.stripe.events)
    system.clock.advance(10)
    await patch_customer(PatchCustomer(customer_id=ada.id, changes={"name": "Ada (catalog)"}), system.uow_factory(), system.clock)
    await system.settle()
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.kind, finding.fix_status, finding.detail) == (
        FindingKind.DIFFERS,
        FixStatus.APPLIED,
        "name: changed on both sides",
    )
    await system.settle()
    assert (await system.customer(ada.id)).name == system.stripe.customers[external_id]["name"] == "Ada (catalog)"
    assert await findings(system, await reconcile(system)) == []
    assert any("catalog value kept" in (r.note or "") for r in await system.history(ada.id))


async def test_dry_runs_do_not_postpone_the_scheduled_drift_check(system):
    from datetime import timedelta

    from application.sync.reconcile import schedule_due

    ctx = await system.context()
    await schedule_due(ctx, system.container.integrations(), 3600)
    await reconcile(system, owner="worker", dead=True)  # runs the scheduled one (claims the queued run)
    system.clock.advance(3000)
    await reconcile(system, dry_run=True)  # an on-demand report, 50 minutes later
    system.clock.advance(700)
    await schedule_due(ctx, system.container.integrations(), 3600)
    async with system.uow_factory() as uow:
        runs = await uow.reconcile.runs("stripe", 10)
    assert next((r.trigger, r.dry_run, r.status) for r in runs) == ("schedule", False, RunStatus.QUEUED)
    assert runs[0].created_at - runs[-1].created_at == timedelta(seconds=3700)


# -- found by the second review -----------------------------------------------------------------------


async def test_a_preview_with_match_by_email_does_not_release_what_it_did_not_link(system):
    """A dry run changes nothing, holds included: previewing `--match-by email` plans a link, links
    nothing, and the pair a real run left ambiguous stays held from live import and export."""
    [stripe_id], [customer_id] = await before_install(
        system, stripe=[("Ada S", "ada@example.com")], catalog=[("Ada C", "ada@example.com")]
    )
    await reconcile(system)
    system.clock.advance(60)
    preview = await reconcile(system, dry_run=True, match_by=MatchBy.EMAIL)
    assert [f.fix for f in await findings(system, preview)] == [Fix.LINK]
    await system.stripe.update_async(stripe_id, params={"name": "Ada S2"})
    await patch_customer(PatchCustomer(customer_id=customer_id, changes={"name": "Ada C2"}), system.uow_factory(), system.clock)
    await system.settle()
    assert len(await catalog(system)) == 1 and len(system.stripe.customers) == 1


async def test_a_dead_lettered_create_is_sent_again_by_the_drift_check_and_lands_once(system, monkeypatch):
    from adapters.stripe.integration import StripeIntegration

    ada = await create_customer(CreateCustomer("Ada", "ada@example.com"), system.uow_factory(), system.clock)
    create = StripeIntegration.create_customer

    async def broken(self, *args, **kwargs):
        raise RuntimeError("an unexpected answer")  # a bug: dead-lettered after the attempts, its intent kept

    monkeypatch.setattr(StripeIntegration, "create_customer", broken)
    await system.settle()
    monkeypatch.setattr(StripeIntegration, "create_customer", create)
    assert await system.mapping(ada.id) is None and await dead_letters(system)
    system.clock.advance(86400)
    run = await reconcile(system)
    [finding] = await findings(system, run)
    assert (finding.fix, finding.fix_status) == (Fix.EXPORT, FixStatus.APPLIED) and "in flight" in finding.detail
    await system.settle()
    assert await system.mapping(ada.id) is not None and len(system.stripe.customers) == 1


async def test_many_dry_runs_neither_postpone_nor_hasten_the_scheduled_check(system):
    from datetime import timedelta

    from application.sync.reconcile import schedule_due

    ctx = await system.context()
    await reconcile(system)  # a run that fixes, at 0
    for _ in range(60):  # a monitoring --dry-run every ten minutes
        system.clock.advance(600)
        await reconcile(system, dry_run=True)
        await schedule_due(ctx, system.container.integrations(), 86400)
        async with system.uow_factory() as uow:
            assert (await uow.reconcile.runs("stripe", 1))[0].trigger != "schedule"
    system.clock.advance(86400 - 36000)
    await schedule_due(ctx, system.container.integrations(), 86400)
    async with system.uow_factory() as uow:
        [latest] = await uow.reconcile.runs("stripe", 1)
    assert (latest.trigger, latest.created_at - system.clock.now()) == ("schedule", timedelta(0))


async def test_the_report_counts_what_is_stored_even_when_a_commit_answer_was_lost(system, monkeypatch):
    import adapters.memory.database as memory
    import application.sync.reconcile.comparison as comparison
    import application.sync.reconcile.run as reconciling
    from application.errors import StorageUnavailable

    monkeypatch.setattr(comparison, "CATALOG_PAGE", 2)
    await before_install(system, catalog=[(f"C{i}", f"c{i}@example.com") for i in range(5)])
    state = {"armed": False, "done": False}
    save, commit = reconciling.Reconciler._save, memory.InMemoryUnitOfWork.commit

    async def arming_save(self, uow, run):
        await save(self, uow, run)
        if run.phase is Phase.CATALOG and run.checkpoint is not None and not state["done"]:
            state["armed"] = True

    async def commit_then_lose_the_answer(self):
        await commit(self)
        if state["armed"]:
            state["armed"], state["done"] = False, True
            raise StorageUnavailable("connection lost after COMMIT was sent")

    monkeypatch.setattr(reconciling.Reconciler, "_save", arming_save)
    monkeypatch.setattr(memory.InMemoryUnitOfWork, "commit", commit_then_lose_the_answer)
    run = await reconcile(system)
    assert state["done"] and (run.counts["only_here"], run.counts["fix_applied"]) == (5, 5)
