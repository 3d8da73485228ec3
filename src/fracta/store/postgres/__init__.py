"""The PostgreSQL backend of the state store (Compose and Kubernetes modes); needs fracta[postgres].

connect.py opens connections and runs operations (clear errors, retries, passwords hidden),
listen.py receives notifications, migrations.py applies the versioned schema (schema.py), check.py
is what `fracta doctor` asks of the database. store.py is the Store itself, made of agents.py,
mail.py, missions.py, events.py and tokens.py.
"""

from __future__ import annotations

from .store import PostgresStore, open_from_config, open_store

__all__ = ["PostgresStore", "open_from_config", "open_store"]
