"""PostgreSQL with a client-side deadline on every call (see base.py)."""
