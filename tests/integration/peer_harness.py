"""Subprocesses driven with JSON lines over stdin/stdout (bounded waits everywhere):
``JsonProcess``, and ``PeerProcess`` running ``peer.py`` (a listener)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import orjson

PEER = Path(__file__).with_name("peer.py")
TIMEOUT_S = 60.0


class JsonProcess:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env=None if env is None else {**os.environ, **env},
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


class PeerProcess(JsonProcess):
    def __init__(
        self,
        directory: Path,
        db: str = "server",
        *,
        tls: bool = False,
        user: str | None = None,
        password: str | None = None,
        read_only: bool = False,
        collections: list[str] | None = None,
        port: int = 0,
        event_loop: str | None = None,
    ) -> None:
        """``event_loop``: the peer's ``$COUCHLITE_EVENT_LOOP`` (default: as this process's)."""
        args = [str(PEER), "--dir", str(directory), "--db", db, "--port", str(port)]
        if tls:
            args.append("--tls")
        if user:
            args += ["--user", user, "--password", password or ""]
        if read_only:
            args.append("--read-only")
        for full in collections or []:
            args += ["--collection", full]
        self.db = db
        super().__init__(args, None if event_loop is None else {"COUCHLITE_EVENT_LOOP": event_loop})
        self.port: int = self.hello["port"]
        self.urls: list[str] = self.hello["urls"]
        self.cert_pem: str | None = self.hello["cert_pem"]

    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or ("wss" if self.cert_pem else "ws")
        return f"{scheme}://127.0.0.1:{self.port}/{self.db}"

    def put(self, doc_id: str, body: dict[str, Any], collection: str = "_default._default") -> str:
        return str(self.command("put", id=doc_id, body=body, collection=collection)["rev"])

    def dump(self, collection: str = "_default._default") -> dict[str, Any]:
        return dict(self.command("dump", collection=collection)["docs"])

    def __enter__(self) -> PeerProcess:
        return self
