"""The state store: one protocol (base.py), two backends (files/, postgres/)."""
