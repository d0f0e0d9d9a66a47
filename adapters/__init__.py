"""Adapters: one driver each (memory, postgres, kafka, stripe), implementing application.ports."""
