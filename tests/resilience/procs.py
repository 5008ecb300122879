"""A subprocess driven with JSON lines over stdin/stdout (every wait bounded)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import orjson

REPLICATOR = Path(__file__).with_name("replicator_proc.py")
TIMEOUT_S = 60.0


class JsonProcess:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: Queue[str | None] = Queue()
        self._stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            self.hello = self.read()
        except BaseException:
            self.kill()
            raise

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def read(self) -> Any:
        try:
            line = self._lines.get(timeout=TIMEOUT_S)
        except Empty:
            raise TimeoutError(f"no answer; stderr: {''.join(self._stderr)}") from None
        if line is None:
            self.proc.wait(10)
            raise RuntimeError(f"exited ({self.proc.returncode}): {''.join(self._stderr)}")
        return orjson.loads(line)

    def command(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"op": op, **fields}).decode() + "\n")
        self.proc.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("stop")
            finally:
                self.proc.wait(30)
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind in the process."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        for pump in self._pumps:
            pump.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> JsonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except Exception:
            self.kill()


def replicator_process(
    directory: Path, url: str, *, docs: int = 0, kind: str = "push", db: str = "client"
) -> JsonProcess:
    args = [str(REPLICATOR), "--dir", str(directory), "--db", db, "--url", url]
    args += ["--docs", str(docs), "--kind", kind]
    return JsonProcess(args)
