"""The PostgreSQL backend of the state store (Compose and Kubernetes modes); needs fracta[postgres]."""

from __future__ import annotations

from .store import PostgresStore, open_store

__all__ = ["PostgresStore", "open_store"]
