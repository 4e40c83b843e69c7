"""The ``beamlink`` command (Typer + Rich): one module per noun. Nothing imports from here."""
