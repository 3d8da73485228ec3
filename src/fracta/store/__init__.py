"""The state store: one protocol (base.py), a backend per store (files, postgres)."""
