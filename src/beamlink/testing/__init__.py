"""Test support that facilities may reuse: fresh databases on SQLite or PostgreSQL, real services.

The pytest fixtures built on these live in ``tests/conftest.py``; this package holds the parts that do
not depend on pytest.
"""
