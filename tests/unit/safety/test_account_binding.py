"""Finding 3: the catalog is bound to one Stripe account and mode; another one is refused until an
operator rebinds, so a wrong key can never rewrite the catalog."""

import pytest

from adapters.memory.stripe import InMemoryStripe
from adapters.stripe.integration import StripeIntegration, key_mode
from application.accounts import check_binding, rebind
from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.errors import AccountMismatch, UnprovenBinding
from domain.binding import ExternalAccount
from tests.support.system import WEBHOOK_SECRET


def integration(stripe: InMemoryStripe, mode: str = "test") -> StripeIntegration:
    return StripeIntegration(stripe, [WEBHOOK_SECRET], mode=mode)


async def test_the_first_start_binds_and_the_same_account_passes_again(system, clock):
    account = InMemoryStripe(clock, account_id="acct_ours")
    first = await check_binding(integration(account), system.uow_factory, clock)
    again = await check_binding(integration(account), system.uow_factory, clock)
    assert first == again and first.account == ExternalAccount("acct_ours", "test")


@pytest.mark.parametrize(("account_id", "mode"), [("acct_other", "test"), ("acct_ours", "live")])
async def test_another_account_or_mode_is_refused_in_one_line(system, clock, account_id, mode):
    await check_binding(integration(InMemoryStripe(clock, account_id="acct_ours")), system.uow_factory, clock)
    with pytest.raises(AccountMismatch) as refused:
        await check_binding(integration(InMemoryStripe(clock, account_id=account_id), mode), system.uow_factory, clock)
    message = str(refused.value)
    assert "\n" not in message and "acct_ours (test mode)" in message and "custsync stripe rebind" in message


async def test_rebind_is_the_operators_decision_and_sticks(system, clock):
    await check_binding(integration(InMemoryStripe(clock, account_id="acct_old")), system.uow_factory, clock)
    new_account = integration(InMemoryStripe(clock, account_id="acct_new"))
    old, new = await rebind(new_account, system.uow_factory, clock)
    assert (old.account.account_id, new.account.account_id) == ("acct_old", "acct_new")
    assert (await check_binding(new_account, system.uow_factory, clock)).account.account_id == "acct_new"


@pytest.mark.parametrize(
    ("key", "mode"),
    [("sk_test_123", "test"), ("sk_live_123", "live"), ("rk_test_1", "test"), ("rk_live_1", "live"), ("pk_test_1", "unknown")],
)
def test_the_mode_is_the_keys_prefix(key, mode):
    assert key_mode(key) == mode


async def test_a_catalog_linked_before_bindings_is_not_bound_to_an_account_that_does_not_know_it(system, clock):
    # An existing deployment upgraded with a wrong key: the first start must not bind to it.
    customer = await create_customer(CreateCustomer("Ada"), system.uow_factory(), clock)
    await system.settle()
    with pytest.raises(UnprovenBinding, match="does not know"):
        await check_binding(integration(InMemoryStripe(clock, account_id="acct_wrong")), system.uow_factory, clock)
    async with system.uow_factory() as uow:
        assert await uow.bindings.get("stripe") is None
    right = await check_binding(integration(system.stripe), system.uow_factory, clock)
    assert right.account.account_id == system.stripe.account_id and (await system.mapping(customer.id)) is not None
