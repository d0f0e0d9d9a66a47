"""The catalog's domain: customers, their links to external systems, and sync records.

Pure Python: imports only the standard library and msgspec (for value structs and message codecs).
"""
