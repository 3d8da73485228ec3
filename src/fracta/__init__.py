"""fracta: fan work out to many AI coding agents and bring it back."""

__version__ = "0.1.0"
