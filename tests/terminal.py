"""Running ``python -m couchlite`` on a pseudo-terminal (POSIX): what the command shows when a
person, not a script, is at the other end (progress bars, prompts, live status lines)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

#: Called with the process, the terminal's master end and all output so far, after each read:
#: it may answer a prompt (write to the master) or signal the process.
React = Callable[[subprocess.Popen[bytes], int, bytes], None]


def run_on_a_terminal(
    args: Sequence[object], env: dict[str, str], react: React, timeout: float = 60
) -> tuple[int, bytes]:
    """Run the command with a pseudo-terminal as stdin, stdout and stderr; return its exit code
    and everything it wrote there, read until it exits (bounded by ``timeout``)."""
    import pty  # POSIX only

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "couchlite", *map(str, args)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # no controlling terminal: the command can only use the pty
        env=env,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
            react(process, master, output)
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)
