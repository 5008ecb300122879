"""``stop_requested``: the first SIGINT asks for a clean stop, the second cuts it short."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from couchlite.cli._signals import stop_requested

pytestmark = pytest.mark.timeout(30)


def _interrupt_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    # the handler runs in the main thread at its next check: give it one, boundedly
    threading.Event().wait(0.01)


def test_the_second_sigint_raises_keyboard_interrupt() -> None:
    assert threading.current_thread() is threading.main_thread()  # where handlers run
    with stop_requested() as stop:
        _interrupt_self()
        assert stop.is_set()  # the first: only a request, the command stops in order
        with pytest.raises(KeyboardInterrupt):
            _interrupt_self()
            for _ in range(100):  # bounded: each round gives the handler a chance to run
                threading.Event().wait(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_only_asks_for_a_stop() -> None:
    with stop_requested() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if stop.is_set():
                break
            threading.Event().wait(0.01)
        assert stop.is_set()
