"""The installation id and the account bindings on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.tables import account_bindings, installation
from domain.binding import AccountBinding, ExternalAccount


class SqlAlchemyInstallationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self) -> str | None:
        return await self._c.scalar(select(installation.c.id))

    async def add(self, installation_id: str, at: datetime) -> str:
        # Two processes starting at once: the first insert stands, the second reads it.
        await self._c.execute(
            insert(installation).values(singleton=True, id=installation_id, created_at=at).on_conflict_do_nothing()
        )
        stored = await self.get()
        assert stored is not None
        return stored


class SqlAlchemyBindingRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, system: str) -> AccountBinding | None:
        row = (await self._c.execute(select(account_bindings).where(account_bindings.c.system == system))).first()
        if row is None:
            return None
        return AccountBinding(system=row.system, account=ExternalAccount(row.account_id, row.mode), bound_at=row.bound_at)

    async def add(self, binding: AccountBinding) -> AccountBinding:
        values = {"account_id": binding.account.account_id, "mode": binding.account.mode, "bound_at": binding.bound_at}
        await self._c.execute(insert(account_bindings).values(system=binding.system, **values).on_conflict_do_nothing())
        stored = await self.get(binding.system)
        assert stored is not None
        return stored

    async def save(self, binding: AccountBinding) -> None:
        values = {"account_id": binding.account.account_id, "mode": binding.account.mode, "bound_at": binding.bound_at}
        statement = insert(account_bindings).values(system=binding.system, **values)
        await self._c.execute(statement.on_conflict_do_update(index_elements=[account_bindings.c.system], set_=values))
