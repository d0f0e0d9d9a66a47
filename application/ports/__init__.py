"""The ports: what the application needs from the outside world, as Protocols, one module per
area. Adapters implement them structurally (no inheritance needed): ``adapters/memory`` for tests
and the embedded dev mode, ``adapters/postgres``, ``adapters/kafka``, ``adapters/stripe`` and
``adapters/salesforce`` for real; ``entrypoints/factories.py`` has the type checker hold each
adapter to its port. Import them from here: ``from application.ports import Integration``.
"""

from application.ports.catalog import (
    BindingRepository,
    CreateIntentRepository,
    Cursor,
    CursorRepository,
    CustomerRepository,
    InstallationRepository,
    MappingRepository,
    SyncRecordRepository,
)
from application.ports.clock import Clock
from application.ports.delivery import DeadLetterRepository, Inbox, Outbox, OutboxRelayPort, PendingEvent
from application.ports.integrations import ChangePage, Integration, Integrations, Page, WebhookSource, WebhookSources
from application.ports.messaging import Delivery, Envelope, MessagePublisher, MessageSource, Partition
from application.ports.reconcile import CREATE_IN_FLIGHT, ReconcileRepository, SeenExternal
from application.ports.retention import EventsScrubbed, RetentionRepository, ScrubCandidate
from application.ports.status import ConsumerLag, StatusRepository, SyncActivity, SyncMetrics
from application.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "CREATE_IN_FLIGHT",
    "BindingRepository",
    "ChangePage",
    "Clock",
    "ConsumerLag",
    "CreateIntentRepository",
    "Cursor",
    "CursorRepository",
    "CustomerRepository",
    "DeadLetterRepository",
    "Delivery",
    "Envelope",
    "EventsScrubbed",
    "Inbox",
    "InstallationRepository",
    "Integration",
    "Integrations",
    "MappingRepository",
    "MessagePublisher",
    "MessageSource",
    "Outbox",
    "OutboxRelayPort",
    "Page",
    "Partition",
    "PendingEvent",
    "ReconcileRepository",
    "RetentionRepository",
    "ScrubCandidate",
    "SeenExternal",
    "StatusRepository",
    "SyncActivity",
    "SyncMetrics",
    "SyncRecordRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WebhookSource",
    "WebhookSources",
]
