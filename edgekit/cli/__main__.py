"""``python -m edgekit.cli``: the same command line as the ``edgekit`` script."""

from .app import main

main()
