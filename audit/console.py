"""What a run shows while it works: live progress lines on a terminal, periodic plain log lines elsewhere.

On a terminal (rich): one line per tenant in flight with the phase it is in, a bar, the count out of
the total, the percentage and the time left where the total is known (the directory's user count, the
mailboxes to assess once the user list is read), elapsed time otherwise; a line for the whole run when
there are several tenants; a line for the report while it is written. Log records print above the
lines, and the lines are removed when the run ends, so the results that follow start on a clean line.

Elsewhere (cron, containers, a pipe, --log-format json): an INFO log line per tenant and phase at most
every `interval` seconds, and one when a phase with a known total completes.

Events come as progress(phase, done, total, tenant): `total` None when unknown. A tenant's phase "done"
ends its line; phases without a tenant ("tenants", "writing the report", ...) are about the run.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("audit")

DONE = "done"
REFRESHES_PER_SECOND = 8
LABELS = {"probes": "mailboxes"}  # phase names as the admin reads them


@dataclass
class _Line:
    task: int | None = None
    phase: str = ""
    counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # phase -> (done, total)


def _count(done: int, total: int | None) -> str:
    if not total:
        return f"{done:,}"
    return f"{done:,}/{total:,} ({min(100.0, 100.0 * done / total):.0f}%)"


class Progress:
    """A context manager and the progress callback of runner.run(); `live` None: bars on a terminal only."""

    def __init__(self, stream=None, interval: float = 15.0, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        if live is None:
            live = bool(getattr(self.stream, "isatty", lambda: False)()) and not _json_logs()
        self.live = live
        self.interval = interval
        self.lock = threading.RLock()  # reentrant: a record logged by a thread that holds it prints
        self.lines: dict[str, _Line] = {}
        self.last: dict[str, float] = {}  # plain lines: when each label was last logged, and what it said
        self.said: dict[str, str] = {}
        self._bars = None
        self._swapped: list[tuple[logging.StreamHandler, object]] = []
        self._stderr = None  # sys.stderr as it was, while ours prints above the lines
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Progress:
        if self.live:
            self._start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is None:
            return
        self._stop.set()
        self._ticker.join()
        # Empty the live region first, under the lock every writer takes, so no late event redraws a line
        # that stop() would then have to erase.
        with self.lock:
            bars, self._bars = self._bars, None  # later events are logged as plain lines
            for task in list(bars.task_ids):
                bars.remove_task(task)
            self.lines.clear()
            bars.refresh()
            bars.stop()
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
            if self._stderr is not None:
                sys.stderr, self._stderr = self._stderr, None

    def _start(self) -> None:
        from rich import progress as bars
        from rich.console import Console

        console = Console(file=self.stream, stderr=self.stream is sys.stderr)
        # Everything that writes to the terminal while the lines are live holds self.lock: the redraws
        # (our ticker, and rich's own on add_task and reset) and each log record. rich's own redraw thread
        # and stderr proxy do not serialise with a record printed from another thread: the record's
        # "move up and erase" is worked out before a redraw lands and written after it, which leaves a
        # stale progress line on the screen. So rich refreshes only when asked, and records come to us.
        self._bars = bars.Progress(
            bars.SpinnerColumn(),
            bars.TextColumn("{task.description}"),
            bars.BarColumn(bar_width=24),
            bars.MofNCompleteColumn(),
            bars.TaskProgressColumn(),
            bars.TimeRemainingColumn(),
            bars.TimeElapsedColumn(),
            bars.TextColumn("{task.fields[extra]}", style="dim"),
            console=console,
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        above = _Above(console, self.lock, self.stream)
        with self.lock:
            self._bars.start()
            original = sys.stderr
            if self.stream is sys.stderr:
                self._stderr, sys.stderr = original, above
            # The console log handler writes to the stderr it was given at set-up; point it at the proxy
            # for the run, so each record prints above the progress lines instead of being glued onto them.
            # The handler may hold the redacting wrapper's raw stream (audit.logs.setup), not the wrapper.
            targets = (self.stream, getattr(self.stream, "raw", self.stream))
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in targets:
                    self._swapped.append((handler, handler.stream))
                    handler.setStream(above)
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1 / REFRESHES_PER_SECOND):
            with self.lock:
                if self._bars is not None:
                    self._bars.refresh()

    # -------------------------------------------------------------------------------------- events
    def __call__(self, phase: str, done: int, total: int | None, tenant: str = "") -> None:
        key = tenant or "run"
        with self.lock:
            if self._bars is not None:
                self._show(key, tenant, phase, done, total)
            else:
                self._log(key, tenant, phase, done, total)

    def _show(self, key: str, tenant: str, phase: str, done: int, total: int | None) -> None:
        bars = self._bars
        line = self.lines.setdefault(key, _Line())
        if phase == DONE:
            if line.task is not None:
                bars.remove_task(line.task)
            del self.lines[key]
            return
        line.counts[phase] = (done, total)
        # The bar follows the phase in progress that has a total; the others are listed beside it.
        current = next(
            (p for p, (d, t) in reversed(line.counts.items()) if t and d < t),
            phase,
        )
        cur_done, cur_total = line.counts[current]
        label = LABELS.get(current, current)
        name = f"{tenant}: {label}" if tenant else label
        extra = "  ".join(
            f"{LABELS.get(p, p)} {_count(d, t)}" for p, (d, t) in line.counts.items() if p != current and (d or t)
        )
        if line.task is None:
            line.task = bars.add_task(name, total=cur_total, completed=cur_done, extra=extra)
            line.phase = current
            return
        if cur_total is None:  # update() and reset() leave an unset total alone; the task object takes None
            for task in bars.tasks:
                if task.id == line.task:
                    task.total = None
        if current != line.phase:  # a new phase: its own speed, hence its own time left
            bars.reset(line.task, total=cur_total, completed=cur_done, description=name, extra=extra)
            line.phase = current
        else:
            bars.update(line.task, total=cur_total, completed=cur_done, description=name, extra=extra)

    def _log(self, key: str, tenant: str, phase: str, done: int, total: int | None) -> None:
        if phase == DONE:
            return
        label = f"{key}: {LABELS.get(phase, phase)}" if tenant else LABELS.get(phase, phase)
        text = _count(done, total) if (total or done) else "started"
        now = time.monotonic()
        finished = bool(total) and done >= total
        first = label not in self.last
        if self.said.get(label) == text:
            return
        if first or finished or now - self.last[label] >= self.interval:
            self.last[label], self.said[label] = now, text
            log.info("%s: %s", label, text)


class _Above(io.TextIOBase):
    """A text stream whose complete lines print above the live progress lines, each write whole under `lock`;
    what else a caller asks of it (fileno, encoding, ...) the stream under it answers."""

    def __init__(self, console, lock: threading.RLock, stream) -> None:
        from rich.ansi import AnsiDecoder

        self._console, self._lock, self._stream = console, lock, stream
        self._decoder = AnsiDecoder()
        self._partial = ""

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        from rich.text import Text

        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            if lines:
                self._console.print(Text("\n").join(self._decoder.decode_line(line) for line in lines))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._partial:
                self._console.print(self._partial)
                self._partial = ""

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _json_logs() -> bool:
    from audit.logs import JsonFormatter

    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
