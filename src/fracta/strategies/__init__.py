"""Strategies: reusable Python DAG pipelines with a data contract, run by the strategy runner.

A strategy module (in the repository's strategies/ folder) imports what it declares from here.
"""

from __future__ import annotations

from .api import Context, Data, NoParams, Source, Strategy

__all__ = ["Context", "Data", "NoParams", "Source", "Strategy"]
