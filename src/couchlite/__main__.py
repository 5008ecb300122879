"""``python -m couchlite``: the ``couchlite`` command (the ``couchlite[cli]`` extra)."""

from __future__ import annotations

import sys


def run() -> None:
    """Run the ``couchlite`` click group, or explain which extra it needs."""
    try:
        from couchlite.cli import main
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ("click", "rich"):
            raise
        sys.stderr.write(
            f"error: the couchlite command needs the cli extra ({exc.name} is missing): "
            "pip install 'couchlite[cli]'\n"
        )
        sys.exit(1)
    main(prog_name="couchlite")


if __name__ == "__main__":
    run()
