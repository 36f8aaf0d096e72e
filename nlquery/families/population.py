"""Plan families (see nlquery/families/base.py)."""
