"""``python -m beamlink`` is the ``beamlink`` command."""

from beamlink.cli.main import main

main()
