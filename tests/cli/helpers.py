"""Running the real ``couchlite`` command in subprocesses: plain, long-running, on a terminal.

Every wait is bounded by a deadline; nothing measures how long anything took.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from tests.terminal import run_on_a_terminal

#: Bound on one command run (a sync includes TLS handshakes on a machine shared with others).
RUN_TIMEOUT_S = 60


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS="120", PYTHONWARNINGS="error::ResourceWarning", **(extra or {}))
    return env


def couchlite(
    *args: str | Path,
    stdin_text: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m couchlite ARGS`` to completion; stdin is ``stdin_text`` or /dev/null."""
    return subprocess.run(
        [sys.executable, "-m", "couchlite", *map(str, args)],
        input=stdin_text,
        stdin=subprocess.DEVNULL if stdin_text is None else None,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=environment(env),
        cwd=cwd,
    )


def ok(*args: str | Path, stdin_text: str | None = None, env: dict[str, str] | None = None) -> str:
    done = couchlite(*args, stdin_text=stdin_text, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def json_lines(text: str) -> list[Any]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The error message of a failed run, checked to be one line without a traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return lines[-1]


class LongRunning:
    """A ``couchlite`` process (``serve``, ``sync --continuous``) read line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "couchlite", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(env),
        )
        self.lines: list[str] = []
        self._buffer = b""

    def read_line(self, deadline: float) -> str | None:
        """The next line of stdout, or ``None`` at end of file or past the deadline."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode()
        self.lines.append(text)
        return text

    def wait_for_json(self, event: str, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """The next ``{"event": event, ...}`` line (``--json`` output)."""
        deadline = time.monotonic() + timeout
        while (line := self.read_line(deadline)) is not None:
            value = orjson.loads(line)
            if value.get("event") == event:
                return value  # type: ignore[no-any-return]
        raise AssertionError(f"no {event!r} event from {self.args}: {self.lines} {self.stderr()}")

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode()

    def interrupt(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig``; wait (bounded) for the exit; return code, rest of stdout, stderr."""
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=RUN_TIMEOUT_S)
        return self.process.returncode, self._buffer.decode() + out.decode(), err.decode()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=RUN_TIMEOUT_S)


@contextmanager
def serving(
    *args: str | Path, env: dict[str, str] | None = None
) -> Iterator[tuple[LongRunning, dict[str, Any]]]:
    """``couchlite serve ARGS --port 0 --json``: the process and its "started" event."""
    server = LongRunning(["serve", *map(str, args), "--port", "0", "--json"], env=env)
    try:
        yield server, server.wait_for_json("started")
    finally:
        server.close()


def local_url(started: dict[str, Any]) -> str:
    """The listener's URL on 127.0.0.1 (tests stay on the loopback interface)."""
    return next(url for url in started["urls"] if "://127.0.0.1:" in url)


def on_a_terminal(
    args: list[str | Path],
    env: dict[str, str] | None = None,
    *,
    interrupt_after: str | None = None,
) -> tuple[int, str]:
    """Run ``python -m couchlite ARGS`` with a pseudo-terminal as stdin, stdout and stderr;
    return its exit code and everything it wrote there (read until it exits, bounded). With
    ``interrupt_after``, SIGINT is sent once that text has appeared (for ``serve``)."""
    pending = [interrupt_after]

    def react(process: subprocess.Popen[bytes], master: int, output: bytes) -> None:
        text = pending[0]
        if text is not None and text.encode() in output:
            process.send_signal(signal.SIGINT)
            pending[0] = None

    env = environment({"TERM": "xterm-256color", **(env or {})})
    code, output = run_on_a_terminal(args, env, react, RUN_TIMEOUT_S)
    return code, output.decode(errors="replace")
