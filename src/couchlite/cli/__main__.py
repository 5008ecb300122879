"""``python -m couchlite.cli``."""

from couchlite.cli.main import main

main()
