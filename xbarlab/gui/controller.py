"""The bench controller: one logged lab session, experiments run on a worker thread."""

from __future__ import annotations

import datetime as _dt
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QThread, pyqtSignal

from xbarlab.errors import XbarlabError
from xbarlab.runs.session import LabSession
from xbarlab.runs.step import Aborted, Progress


class JobThread(QThread):
    """Runs one callable off the UI thread; reports its result or error by signal."""

    done = pyqtSignal(object)
    failed = pyqtSignal(str, bool)  # message, was it an abort

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            result = self._fn()
        except Aborted as exc:
            self.failed.emit(str(exc), True)
        except XbarlabError as exc:
            self.failed.emit(str(exc), False)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never crashes the UI
            self.failed.emit(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", False)
        else:
            self.done.emit(result)


class BenchController(QObject):
    """Owns the :class:`LabSession`; every instrument action is a logged run on a worker thread."""

    connected = pyqtSignal(dict)  # identities
    disconnected = pyqtSignal()
    busy_changed = pyqtSignal(bool)
    progress = pyqtSignal(str, object)  # kind, Progress
    run_finished = pyqtSignal(str, object, str)  # kind, result, run id
    run_failed = pyqtSignal(str, str, bool)  # kind, message, aborted
    connect_failed = pyqtSignal(str)  # message
    station_changed = pyqtSignal()  # the station configuration (limits) forms check against
    enqueue = pyqtSignal(object)  # a RunPanel whose current parameters go to the run queue
    message = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session: LabSession | None = None
        self._thread: JobThread | None = None
        self._threads: list[JobThread] = []  # kept until finished (a QThread must outlive its run)
        self._running = False
        self.station_source: str | None = None
        self.station_config: Any = None  # StationConfig of the station chosen (or connected)
        self.current_run_id: str | None = None  # the run being executed, or the last one started
        self._run_count = 0
        self._closing = False
        self._pending: LabSession | None = None  # opened by a connect job, not yet attached
        self._released: LabSession | None = None  # a pending session closed before it was attached

    # -- state ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._running

    @property
    def log_path(self) -> Path | None:
        return self.session.log_path if self.session is not None else None

    def sim_time(self) -> float | None:
        return self.session.station.sim_time() if self.session is not None else None

    # -- connection ---------------------------------------------------------------------------------
    def connect_bench(self, station: str | None, log_folder: str | Path) -> None:
        """Open the station (None: embedded sim) and a new log in ``log_folder`` (off the UI thread)."""
        if self.session is not None:
            self.disconnect_bench()
        folder = Path(log_folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S-%f")
        log = folder / f"session-{stamp}.h5"
        self.station_source = station

        self._closing = False

        def job() -> LabSession:
            session = LabSession.open(station, log, title="xbarlab gui")
            self._pending = session
            return session

        self._start(job, self._on_connected, self._on_connect_failed)

    def set_station_config(self, config: Any) -> None:
        """The station configuration whose limits the parameter forms check against."""
        self.station_config = config
        self.station_changed.emit()

    def _on_connected(self, session: LabSession) -> None:
        self._pending = None
        if session is self._released:  # already closed by disconnect_bench / shutdown
            return
        if self._closing:  # the window closed while connecting: release the bench and the log
            session.close()
            return
        self.session = session
        self._run_count = 0
        self.set_station_config(session.config)
        self.connected.emit(dict(session.station.identities))

    def _on_connect_failed(self, message: str, _aborted: bool) -> None:
        self.message.emit(f"connect failed: {message.splitlines()[0] if message else ''}")
        self.connect_failed.emit(message)

    def disconnect_bench(self) -> None:
        """Outputs off, links released, log closed (waits for a running experiment to stop)."""
        if self.busy:
            self.abort()
            self.wait_idle(30_000)
        pending, self._pending = self._pending, None
        if pending is not None and pending is not self.session:  # a connect finished but was not attached
            self._closing = True  # its queued "connected" must not attach the closed session
            self._released = pending
            pending.close()
        if self.session is not None:
            try:
                self.session.close()
            finally:
                self.session = None
                self.disconnected.emit()

    def shutdown(self) -> None:
        """For closing the window: abort, wait, release any session (also one a running connect opens)."""
        self._closing = True
        self.disconnect_bench()

    # -- experiments --------------------------------------------------------------------------------
    def run(self, kind: str | type, params: dict[str, Any], *,
            on_done: Callable[[Any, str], None] | None = None) -> bool:
        """Start one experiment; False (and a message) if not connected or already busy."""
        if self.session is None:
            self.message.emit("connect a station first")
            return False
        if self.busy:
            self.message.emit("an experiment is running; wait or press Abort")
            return False
        session = self.session
        token = session.next_abort_token()  # the session's engine owns abort; this run listens to this token
        name = kind if isinstance(kind, str) else kind.kind
        self._run_count += 1
        run_id = f"{name}-{self._run_count}@{session.session_id}"
        self.current_run_id = run_id

        def job() -> tuple[Any, str]:
            result = session.run(kind, params, progress=lambda p: self.progress.emit(name, p), abort=token,
                                 run_id=run_id)
            return result, run_id

        def done(payload: tuple[Any, str]) -> None:
            result, run_id = payload
            self.run_finished.emit(name, result, run_id)
            if on_done is not None:
                on_done(result, run_id)

        self._start(job, done, lambda msg, aborted: self.run_failed.emit(name, msg, aborted))
        return True

    def abort(self) -> None:
        """Stop the running experiment at its next safe point (outputs off); idle: outputs off now."""
        if self.busy and self.session is None:
            self.message.emit("abort: not connected yet (connecting); nothing is running on the bench")
        elif self.busy:
            self.session.abort()
            self.message.emit("abort requested: stopping at the next safe point")
        elif self.session is not None:
            self.run("safe_state", {})
        else:
            self.message.emit("abort: not connected, nothing to stop (no instrument is driven)")

    def wait_idle(self, timeout_ms: int = 60_000) -> bool:
        """Block until the worker thread has finished (used when closing; does not process events)."""
        ok = all(t.wait(timeout_ms) for t in list(self._threads))
        return ok

    def _start(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_fail: Callable[[str, bool], None]) -> None:
        thread = JobThread(fn, self)

        def finish(handler: Callable[..., None], *args: Any) -> None:
            self._running = False  # before the handler, so it may start the next job
            self.busy_changed.emit(False)
            handler(*args)

        thread.done.connect(lambda result: finish(on_done, result))
        thread.failed.connect(lambda msg, aborted: finish(on_fail, msg, aborted))
        thread.finished.connect(lambda: self._threads.remove(thread) if thread in self._threads else None)
        self._thread = thread
        self._threads.append(thread)
        self._running = True
        self.busy_changed.emit(True)
        thread.start()

    def progress_value(self, p: Progress, key: str) -> Any:
        return p.values.get(key)
