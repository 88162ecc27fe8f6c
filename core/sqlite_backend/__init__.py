"""SQLite for the embedded default (see base.py)."""
