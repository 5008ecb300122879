"""Document expiration: the background thread that purges documents whose time has passed.

It sleeps until the earliest expiration time set in the database (at most
``_tuning.EXPIRATION_MAX_SLEEP_S``) and is woken early whenever a commit sets an expiration.
A purge is an ordinary transaction of the engine, so listeners hear of it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from couchlite import _tuning
from couchlite.errors import DatabaseClosedError

if TYPE_CHECKING:
    from couchlite.database.engine import Engine

log = logging.getLogger("couchlite.database.engine")


def purge_expired(engine: Engine, now: float | None = None) -> int:
    """Purge every document whose expiration time has passed; return how many."""
    now = time.time() if now is None else now
    purged = 0
    for state in list(engine.collections.values()):
        doc_ids = engine.store.expired_doc_ids(state.id, now)
        if not doc_ids:
            continue
        with engine.transaction() as txn:
            if state.dropped:
                continue
            for doc_id in doc_ids:
                record = engine.read_record(state, doc_id)
                expiration = None if record is None else record.expiration
                if expiration is not None and expiration <= now:
                    engine.purge_record(txn, state, doc_id)
                    purged += 1
    return purged


class ExpiryPurger:
    """The purging thread of one engine (started at once, stopped by ``stop``)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the expiration times again now (one was set or changed)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and wait for it (unless called from it)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _main(self) -> None:
        engine = self._engine
        failures = 0
        while not self._stopped.is_set():
            try:
                next_time = engine.store.next_expiration()
                now = time.time()
                if next_time is not None and next_time <= now:
                    purge_expired(engine, now)
                    failures = 0
                    continue
                wait = _tuning.EXPIRATION_MAX_SLEEP_S
                if next_time is not None:
                    wait = min(wait, next_time - now)
                failures = 0
            except DatabaseClosedError:
                return
            except Exception:
                failures += 1
                log.warning("purging expired documents failed", exc_info=True)
                wait = min(_tuning.EXPIRATION_MAX_SLEEP_S, 2.0**failures)
            self._wake.wait(wait)
            self._wake.clear()
