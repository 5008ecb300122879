"""``python -m couchlite.cli``: the same command as ``couchlite`` and ``python -m couchlite``."""

from couchlite.cli.main import main

main(prog_name="couchlite")
