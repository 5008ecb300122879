"""Progress of ``import`` and ``sync``, on stderr: a rich bar, plain lines, or nothing.

On a terminal (stderr is a tty) a rich progress bar shows documents done out of the total,
the percentage, the bytes, the rate and the elapsed time; without a terminal a plain line is
printed at most every ``_tuning.CLI_PROGRESS_LINE_INTERVAL_S`` seconds when something changed
(logs stay readable); ``--quiet`` shows nothing. Stdout is left to the command's own output (a
summary, JSON), so that ``--json`` output can be piped whatever the progress display does.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from couchlite import _tuning


def stderr_is_a_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class ProgressDisplay:
    """``with ProgressDisplay("importing", quiet=...) as shown: shown.update(done, total,
    size)``; ``total`` may be ``None`` (unknown yet)."""

    def __init__(self, what: str, *, quiet: bool = False, unit: str = "docs") -> None:
        self._what = what
        self._unit = unit
        self._started = time.monotonic()
        self._mode = "quiet" if quiet else ("bar" if stderr_is_a_terminal() else "lines")
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = 0.0
        self._last_shown: tuple[int, int | None, int, float | None] | None = None
        self._last_printed: tuple[int, int | None, int, float | None] | None = None

    def __enter__(self) -> ProgressDisplay:
        if self._mode == "bar":
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[count]}"),
                TextColumn("{task.fields[size]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                refresh_per_second=_tuning.CLI_PROGRESS_REFRESH_PER_S,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._what, total=None, count="", size="", rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._mode == "lines" and self._last_shown is not None:
            self._line(*self._last_shown)  # the final state, however recent the last line

    def _rate(self, done: int) -> str:
        elapsed = time.monotonic() - self._started
        return f"{done / elapsed:,.0f} {self._unit}/s" if elapsed > 0 else ""

    def update(
        self, done: int, total: int | None, size: int, *, fraction: float | None = None
    ) -> None:
        """``done`` items of ``total`` (``None``: unknown), ``size`` bytes so far; the bar
        shows ``fraction`` when given (e.g. the part of a file read), else ``done / total``."""
        if self._mode == "quiet":
            return
        done_of: float = done if fraction is None else fraction
        total_of: float | None = total if fraction is None else 1.0
        if self._progress is not None and self._task is not None:
            of = "" if total is None else f"/{total:,}"
            self._progress.update(
                self._task,
                completed=done_of,
                total=total_of,
                count=f"{done:,}{of} {self._unit}",
                size=human_bytes(size),
                rate=self._rate(done),
            )
            return
        shown = (done, total, size, fraction)
        if shown == self._last_printed:
            return  # nothing new: an idle continuous sync stays quiet
        self._last_shown = shown
        now = time.monotonic()
        if now - self._last_line >= _tuning.CLI_PROGRESS_LINE_INTERVAL_S:
            self._line(*shown)

    def _line(self, done: int, total: int | None, size: int, fraction: float | None) -> None:
        self._last_line = time.monotonic()
        self._last_printed = (done, total, size, fraction)
        of = "" if total is None else f"/{total:,}"
        if fraction is None and total:
            fraction = done / total
        percent = "" if fraction is None else f" ({100 * fraction:.0f}%)"
        sys.stderr.write(
            f"{self._what}: {done:,}{of} {self._unit}{percent}, {human_bytes(size)}, "
            f"{self._rate(done)}\n"
        )
        sys.stderr.flush()
        self._last_shown = None


__all__ = ["ProgressDisplay", "human_bytes", "stderr_is_a_terminal"]
