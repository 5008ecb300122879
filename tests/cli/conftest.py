"""The CLI tests need the ``cli`` extra (click and rich)."""

from __future__ import annotations

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")
