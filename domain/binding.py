"""Which external account the catalog is bound to, so that a wrong key can never rewrite it.

A mapping's external id only means something in one account and mode (Stripe: ``acct_...`` and
test/live). A key of another account answers 404 for every mapped customer and would import
foreign customers; so the first start records the account, and a later start with another
account or mode refuses until an operator confirms the change (``custsync stripe rebind``).
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class ExternalAccount(msgspec.Struct, frozen=True):
    """The account an integration's credentials belong to."""

    account_id: str
    mode: str  # "test" or "live" (Stripe: the key's prefix, sk_test_/sk_live_/rk_...)

    def __str__(self) -> str:
        return f"{self.account_id} ({self.mode} mode)"


class AccountBinding(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    account: ExternalAccount
    bound_at: datetime

    def matches(self, account: ExternalAccount) -> bool:
        return self.account == account
