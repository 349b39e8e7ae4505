"""``python -m anomae.cli``: the ``anomae`` command."""

from anomae.cli import main

main()
