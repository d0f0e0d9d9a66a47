"""The Kafka side of the messaging ports, on aiokafka: a publisher, a consumer-group subscription,
and the topic provisioning the worker needs before it starts (the broker does not auto-create)."""

from adapters.kafka.publisher import KafkaPublisher
from adapters.kafka.subscription import KafkaSubscription, TopicsMissing
from adapters.kafka.topics import SYNC_TOPICS, ensure_topics, wait_for_broker

__all__ = ["SYNC_TOPICS", "KafkaPublisher", "KafkaSubscription", "TopicsMissing", "ensure_topics", "wait_for_broker"]
