"""The storage ports on PostgreSQL: SQLAlchemy 2 Core on asyncpg, the schema managed by Alembic.

``engine.create_engine`` builds the pool, ``unit_of_work.SqlAlchemyUnitOfWorkFactory`` is the
UnitOfWorkFactory, ``wakeup.PostgresOutboxWakeup`` wakes the relay and ``migrations`` upgrades
(``upgrade``) or checks (``ensure_migrated``) the schema.
"""
