"""Kubernetes access: the official client wiring, typed resource helpers, and a local API server."""
