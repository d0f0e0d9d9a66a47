"""Entry points: the only layer that knows every piece (settings, container, HTTP app, worker, CLI)."""
