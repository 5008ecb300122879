"""The ``couchlite`` command: ``couchlite identity create|list|show|delete|import|export``.

An optional extra (``pip install couchlite[cli]``: click and rich); the library itself never
imports this package. It uses only couchlite's public API, and it is the one place that prints:
tables and details with rich, errors as one red line and exit status 1.
"""

from __future__ import annotations

from couchlite.cli.main import main

__all__ = ["main"]
