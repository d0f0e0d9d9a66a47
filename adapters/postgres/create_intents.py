"""Create intents on PostgreSQL (SQLAlchemy Core on the unit of work's connection)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.repositories import _is_bigint
from adapters.postgres.tables import create_intents
from domain.customer import CustomerData
from domain.mapping import CreateIntent

c = create_intents.c


class SqlAlchemyCreateIntentRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def get(self, customer_id: int, system: str) -> CreateIntent | None:
        if not _is_bigint(customer_id):
            return None
        row = (await self._c.execute(select(create_intents).where(c.customer_id == customer_id, c.system == system))).first()
        if row is None:
            return None
        return CreateIntent(
            customer_id=row.customer_id,
            system=row.system,
            idempotency_key=row.idempotency_key,
            data=CustomerData(row.name, row.email),
            created_at=row.created_at,
        )

    async def add(self, intent: CreateIntent) -> None:
        await self._c.execute(
            insert(create_intents)
            .values(
                customer_id=intent.customer_id,
                system=intent.system,
                idempotency_key=intent.idempotency_key,
                name=intent.data.name,
                email=intent.data.email,
                created_at=intent.created_at,
            )
            .on_conflict_do_nothing(index_elements=[c.customer_id, c.system])  # the first intent stands
        )

    async def remove(self, customer_id: int, system: str) -> None:
        if _is_bigint(customer_id):
            await self._c.execute(delete(create_intents).where(c.customer_id == customer_id, c.system == system))
