"""The library's event loop: the standard one by default, uvloop on request."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from couchlite._runtime import EVENT_LOOP_ENV, LoopThread, new_event_loop


@pytest.mark.parametrize("value", [None, "", "asyncio", " AsyncIO "])
def test_the_standard_loop_is_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    else:
        monkeypatch.setenv(EVENT_LOOP_ENV, value)
    loop = new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="no fast extra")
def test_uvloop_on_request_runs_the_library_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "uvloop")
    thread = LoopThread(name="test-uvloop")
    try:
        assert type(thread.loop).__module__.startswith("uvloop")

        async def where() -> bool:
            await asyncio.sleep(0)
            return thread.in_loop_thread()

        assert thread.run(where(), timeout=10)
    finally:
        thread.loop.call_soon_threadsafe(thread.loop.stop)


def test_an_unknown_loop_is_refused_by_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "trio")
    with pytest.raises(ValueError, match="'asyncio' or 'uvloop'"):
        LoopThread(name="test-refused")  # raised here: no thread left waiting


def test_uvloop_requested_without_it_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setenv(EVENT_LOOP_ENV, "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    with pytest.raises(ImportError, match=r"couchlite\[fast\]"):
        new_event_loop()
