"""Catalog use cases: one module each."""
