"""``python -m anomae``: the ``anomae`` command."""

from anomae.cli import main

main()
