"""The PostgreSQL store's schema version: the newest migration this fracta knows.

The tables and their migrations come with the store itself (the pg-store branch owns this file
and replaces it); until then this fracta knows no migration, version 0.
"""

from __future__ import annotations

VERSION = 0
