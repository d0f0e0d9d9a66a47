"""Sync use cases: relay the outbox, push catalog changes out, pull external changes in."""
