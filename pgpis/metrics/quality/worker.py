"""The pgpis side of the scorer subprocess: start it, send image paths, read scores, never wait forever.

Protocol (JSON, one object per line; version 1):

- worker -> pgpis, first line: ``{"ready": true, "protocol": 1, "backend": "<what scores>"}``, or
  ``{"unavailable": "<what is missing and how to get it>"}`` (then it exits), or ``{"error": "<why>"}``.
- pgpis -> worker: ``{"id": 0, "path": "/abs/image.png", "tasks": ["quality", "aesthetics"]}``.
- worker -> pgpis: ``{"id": 0, "scores": {"quality": 3.91, "aesthetics": 3.12}}`` or ``{"id": 0, "error": "..."}``.
- pgpis closes the worker's stdin when done; the worker exits.

Anything else on the worker's stdout, an exit, a score outside 1..5 or no answer in time
raises :class:`QualityWorkerError` (the worker's last stderr lines included); nothing hangs.
"""
from __future__ import annotations

import collections
import json
import math
import queue
import subprocess
import threading
from pathlib import Path
from typing import IO, Sequence

from pgpis.errors import PgpisError
from pgpis.metrics.quality.settings import WORKER, QAlignSettings

PROTOCOL = 1
TASKS = ("quality", "aesthetics")
SCORE_RANGE = (1.0, 5.0)
_EOF = object()


class QualityWorkerError(PgpisError, RuntimeError):
    """The scorer subprocess crashed, broke the protocol or returned an impossible score."""


class QualityWorkerTimeout(QualityWorkerError):
    """The scorer subprocess gave no answer in time (it was killed)."""


class QualityUnavailable(PgpisError):
    """The scorer said it cannot run here (a package, the model or the opt-in is missing); the message says which."""


def _pump(stream: IO[str], sink) -> None:
    for line in stream:
        sink(line)
    sink(_EOF)


class QAlignWorker:
    """One running scorer (``with QAlignWorker(settings) as w: w.score(path)``); batch size 1, as Q-Align scores."""

    def __init__(self, settings: QAlignSettings):
        self.settings = settings
        self.script = Path(settings.worker) if settings.worker else WORKER
        self.backend = ""
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=30)
        self._next_id = 0
        self._err_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        s = self.settings
        cmd = [str(s.python), "-I", "-u", str(self.script), "--model", s.model, "--device", s.device,
               "--backend", s.backend]
        return cmd + (["--trust-remote-code"] if s.trust_remote_code else [])

    def __enter__(self) -> "QAlignWorker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker and wait for its first line; raises QualityUnavailable / QualityWorkerError."""
        try:
            self._proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        except OSError as err:
            raise QualityWorkerError(f"cannot start the Q-Align worker with {self.settings.python}: {err}") from err
        threading.Thread(target=_pump, args=(self._proc.stdout, self._lines.put), daemon=True).start()
        self._err_thread = threading.Thread(target=_pump, args=(self._proc.stderr, self._keep_stderr), daemon=True)
        self._err_thread.start()
        first = self._read(self.settings.start_timeout_s, "to say it was ready (loading the model)")
        if "unavailable" in first:
            self.close()
            raise QualityUnavailable(str(first["unavailable"]))
        if "error" in first:
            raise self._fail(f"failed to start: {first['error']}")
        if first.get("ready") is not True or first.get("protocol") != PROTOCOL:
            raise self._fail(f"first line is not a protocol-{PROTOCOL} ready message: {json.dumps(first)[:200]}")
        self.backend = str(first.get("backend") or self.settings.model)

    def close(self) -> None:
        """Close stdin (the worker's signal to exit); kill it if it has not exited within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # ------------------------------------------------------------------ scoring
    def score(self, path: str | Path, tasks: Sequence[str] = TASKS) -> dict[str, float]:
        """{task: score in 1..5} for one image file."""
        if self._proc is None:
            raise QualityWorkerError("the Q-Align worker is not running (start() it first)")
        rid, self._next_id = self._next_id, self._next_id + 1
        request = {"id": rid, "path": str(Path(path).resolve()), "tasks": list(tasks)}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as err:  # broken pipe: it died
            raise self._fail(f"stopped accepting requests ({err})") from err
        reply = self._read(self.settings.image_timeout_s, f"to score {path}")
        if reply.get("id") != rid:
            raise self._fail(f"answered request {reply.get('id')!r} while {rid} was asked ({path})")
        if "error" in reply:
            raise self._fail(f"could not score {path}: {reply['error']}")
        scores = reply.get("scores")
        if not isinstance(scores, dict) or set(scores) != set(tasks):
            raise self._fail(f"reply for {path} lacks scores for {', '.join(tasks)}: {json.dumps(reply)[:200]}")
        out = {}
        for task in tasks:
            v = scores[task]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or not SCORE_RANGE[0] <= v <= SCORE_RANGE[1]:
                raise self._fail(f"{task} score {v!r} for {path} is not a number in {SCORE_RANGE[0]}..{SCORE_RANGE[1]}")
            out[task] = float(v)
        return out

    # ------------------------------------------------------------------ plumbing
    def _keep_stderr(self, line) -> None:
        if line is not _EOF:
            self._stderr.append(line.rstrip("\n"))

    def _read(self, timeout: float, waiting_for: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            err = self._fail(f"gave no answer within {timeout:g} s while waiting {waiting_for}; killed it",
                             QualityWorkerTimeout)
            raise err from None
        if line is _EOF:
            code = self._proc.wait() if self._proc else None
            raise self._fail(f"exited (code {code}) while pgpis was waiting {waiting_for}")
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            raise self._fail(f"printed a line that is not a JSON protocol message while pgpis was waiting "
                             f"{waiting_for}: {line.strip()[:200]!r} (a worker must keep its stdout for the protocol)")
        return msg

    def _fail(self, what: str, kind: type[QualityWorkerError] = QualityWorkerError) -> QualityWorkerError:
        """The error to raise; the worker is killed first so nothing is left running."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        if self._err_thread is not None:
            self._err_thread.join(timeout=2)
        tail = "\n".join(f"    {line}" for line in list(self._stderr)[-12:])
        msg = f"Q-Align worker {self.script.name} ({self.settings.python}) {what}"
        return kind(msg + (f"\n  its last stderr lines:\n{tail}" if tail else ""))
