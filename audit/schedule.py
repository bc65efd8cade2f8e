"""The built-in scheduler: run the audit on a cron expression, keep a heartbeat, stop cleanly.

`serve` keeps one audit at a time on the configured cron expression (standard crontab meaning:
day of week 0 or 7 is Sunday), writes a small JSON heartbeat the container health check reads,
and stops on SIGTERM/SIGINT: the run in progress finishes first; a second signal abandons it (the
report writer only moves complete files into place, so nothing half-written is left behind).

The scheduler runs in a background thread and the main thread only waits for a stop flag. That
keeps the signal handlers trivial (they set a flag; they never take a scheduler lock) and lets the
main thread choose between waiting for a run and abandoning it.

`python -m audit.schedule --check-heartbeat PATH --max-age SECONDS` exits 0 when the heartbeat is
fresh and 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from audit.config import Config, ConfigError, ScheduleConfig
from audit.cron import CRON_HINT
from audit.cron import cron_trigger as crontab_trigger
from audit.exitcodes import ExitCode, stopped_by

log = logging.getLogger("audit")

BEAT_SECONDS = 30.0
PRIVATE_DIR_MODE = 0o700
# Docker's HEALTHCHECK reads these two (https://docs.docker.com/reference/dockerfile/#healthcheck): they
# are its protocol, not etd-audit's exit codes.
HEALTHY, UNHEALTHY = 0, 1


# ---------------------------------------------------------------------------------------------------
# Cron expression -> trigger


def _zone(schedule: ScheduleConfig, where: str) -> tzinfo:
    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"{where}: schedule.timezone: {schedule.timezone!r} is not a known time zone ({exc}). "
            'Use an IANA name such as "UTC" or "Europe/Berlin".'
        ) from None


def cron_trigger(schedule: ScheduleConfig, where: str = "config") -> CronTrigger:
    """The trigger for `schedule.cron` with crontab's meaning (day of week 1 = Monday, 0 or 7 = Sunday).

    Raises ConfigError naming the key and the fix when the expression or the time zone is not valid.
    """
    _zone(schedule, where)
    try:
        return crontab_trigger(schedule.cron, schedule.timezone)
    except ValueError as exc:
        hint = CRON_HINT[:1].upper() + CRON_HINT[1:]
        raise ConfigError(f"{where}: schedule.cron: {schedule.cron!r} is not valid: {exc}. {hint}.") from None


# ---------------------------------------------------------------------------------------------------
# Heartbeat


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def default_heartbeat_file(environ: dict[str, str] | None = None) -> Path:
    """Where the heartbeat goes unless the config names a file: a folder of this user's own.

    $XDG_STATE_HOME/etd-audit/heartbeat, or ~/.local/state/etd-audit/heartbeat when that variable is
    unset or not an absolute path (the XDG Base Directory rule). Never a shared folder such as /tmp,
    where another user could plant the file or a link in its place.
    """
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "etd-audit" / "heartbeat"


def _private_dir(folder: Path) -> None:
    """Create the heartbeat's default folder 0700, or narrow it to 0700 when it is this user's own."""
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f"{folder} is not a folder of this user's own; name another in schedule.heartbeat_file")
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
        os.chmod(folder, PRIVATE_DIR_MODE)


def write_heartbeat(
    path: Path,
    *,
    last_run: datetime | None,
    last_exit: int | None,
    next_run: datetime | None,
    now: datetime | None = None,
) -> None:
    """Write the heartbeat JSON atomically (a reader never sees half a file)."""
    beat = {
        "last_beat": _iso(now or datetime.now(UTC)),
        "last_run": _iso(last_run),
        "last_exit": last_exit,
        "next_run": _iso(next_run),
        "pid": os.getpid(),
    }
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # mkstemp opens a new random name with O_EXCL (mode 0600): a file or link planted beside the
    # heartbeat is never written through, and the rename replaces a link at `path` instead of following it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(beat) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def heartbeat_ok(path: Path, max_age: float, *, now: datetime | None = None) -> bool:
    """True when the heartbeat file exists, parses, and its last_beat is at most max_age seconds old."""
    try:
        beat = json.loads(Path(path).read_text(encoding="utf-8"))
        last = datetime.fromisoformat(beat["last_beat"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if last.tzinfo is None:
        return False
    age = ((now or datetime.now(UTC)) - last).total_seconds()
    return -max_age <= age <= max_age  # a beat far in the future means a broken clock: not healthy


# ---------------------------------------------------------------------------------------------------
# Serving


@dataclass
class _State:
    last_run: datetime | None = None
    last_exit: int | None = None
    running: bool = False
    abandon: bool = False
    stop_signals: int = 0
    last_signal: int = signal.SIGTERM


class _Service:
    """The audit job wrapper, the heartbeat and the stop logic around one scheduler."""

    def __init__(self, job: Callable[[], int], scheduler: BackgroundScheduler, heartbeat: Path) -> None:
        self.job = job
        self.scheduler = scheduler
        self.heartbeat = heartbeat
        self.state = _State()
        self.lock = threading.Lock()

    def next_run(self) -> datetime | None:
        found = self.scheduler.get_job("audit")
        return found.next_run_time if found else None

    def beat(self) -> None:
        with self.lock:
            last_run, last_exit = self.state.last_run, self.state.last_exit
        try:
            write_heartbeat(self.heartbeat, last_run=last_run, last_exit=last_exit, next_run=self.next_run())
        except OSError as exc:
            log.warning("could not write the heartbeat file %s: %s", self.heartbeat, exc)

    def run_audit(self) -> None:
        """Called by the scheduler. The job itself runs in a daemon thread, so a second stop signal
        can abandon it without the interpreter waiting for it at exit."""
        with self.lock:
            self.state.running = True
        started = datetime.now(UTC)
        log.info("scheduled audit starting")
        finished = threading.Event()
        outcome: list[int] = []
        worker = threading.Thread(target=self._call_job, args=(outcome, finished), name="etd-audit-run", daemon=True)
        worker.start()
        while not finished.wait(0.5):
            if self.state.abandon:
                log.warning("scheduled audit abandoned on a second stop signal")
                return
        code = outcome[0] if outcome else ExitCode.CRASH
        with self.lock:
            self.state.last_run, self.state.last_exit, self.state.running = started, code, False
        log.info("scheduled audit finished with exit code %d", code)
        self._log_next()
        self.beat()

    def _call_job(self, outcome: list[int], finished: threading.Event) -> None:
        try:
            outcome.append(int(self.job()))
        except Exception as exc:  # a crash is logged and recorded; the scheduler keeps serving
            log.error("scheduled audit crashed: %s: %s", type(exc).__name__, exc)
            log.debug("traceback of the crashed audit", exc_info=True)
            outcome.append(ExitCode.CRASH)
        finally:
            finished.set()

    def _log_next(self) -> None:
        upcoming = self.next_run()
        if self.scheduler.running and upcoming:
            log.info("next audit run at %s", _iso(upcoming))

    def on_signal(self, signum: int, _frame: object) -> None:
        # Only plain assignments here: a handler must never wait on a lock the main thread may hold.
        self.state.stop_signals += 1
        self.state.last_signal = signum
        if self.state.stop_signals > 1:
            self.state.abandon = True


def serve(
    config: Config,
    job: Callable[[], int],
    *,
    run_now: bool = False,
    heartbeat: Path | None = None,
    beat_seconds: float = BEAT_SECONDS,
) -> int:
    """Run `job` on `config.schedule.cron` until SIGTERM/SIGINT; return 0 after a clean stop.

    job: runs one audit and returns its exit code (it writes the report before it returns).
    run_now: also run once right away. heartbeat: file to keep fresh (default: schedule.heartbeat_file,
    else default_heartbeat_file()). When a second signal abandons a run in progress, returns 128 + that
    signal's number (130 for SIGINT, 143 for SIGTERM), after any report that run was renaming into place
    has landed whole. Raises ConfigError for a bad cron expression or time zone.
    """
    from audit.report.files import hold_commits_for_exit  # here: the health check needs none of the report

    schedule = config.schedule
    trigger = cron_trigger(schedule, str(config.path))
    zone = _zone(schedule, str(config.path))
    scheduler = BackgroundScheduler(timezone=zone)
    if heartbeat or schedule.heartbeat_file:
        beat_file = Path(heartbeat or schedule.heartbeat_file)
    else:
        beat_file = default_heartbeat_file()
        try:
            _private_dir(beat_file.parent)
        except OSError as exc:
            log.warning("the heartbeat folder %s is not private: %s", beat_file.parent, exc)
    service = _Service(job, scheduler, beat_file)

    scheduler.add_job(
        service.run_audit,
        trigger,
        id="audit",
        name="etd-audit",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=schedule.misfire_grace_seconds,
        **({"next_run_time": datetime.now(zone)} if run_now else {}),
    )
    scheduler.add_job(
        service.beat, IntervalTrigger(seconds=beat_seconds), id="heartbeat", name="heartbeat", coalesce=True
    )

    previous = {sig: signal.signal(sig, service.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
        service.beat()
        log.info("scheduler started (cron %r, time zone %s)", schedule.cron, schedule.timezone)
        upcoming = trigger.get_next_fire_time(None, datetime.now(zone))
        log.info("next audit run at %s%s", _iso(upcoming), " (and one now)" if run_now else "")
        while not service.state.stop_signals:
            time.sleep(0.2)
        log.info("stop requested: no new runs will start")
        scheduler.shutdown(wait=False)
        if service.state.running:
            log.info("waiting for the audit in progress to finish (signal again to abandon it)")
        while service.state.running and not service.state.abandon:
            time.sleep(0.2)
        if service.state.abandon and service.state.running:
            # The job's thread is left behind and the process ends; it must not be cut off between
            # renaming a report's workbook and its JSON into place.
            hold_commits_for_exit()
            return stopped_by(service.state.last_signal)
        log.info("scheduler stopped")
        return ExitCode.OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------------
# Health check entry point


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.schedule",
        description="Check the scheduler's heartbeat file (for health checks).",
    )
    parser.add_argument("--check-heartbeat", metavar="PATH", type=Path, required=True)
    parser.add_argument("--max-age", metavar="SECONDS", type=float, default=120.0)
    args = parser.parse_args(argv)
    if heartbeat_ok(args.check_heartbeat, args.max_age):
        return HEALTHY
    print(f"heartbeat {args.check_heartbeat} is missing, unreadable or older than {args.max_age:g} s")
    return UNHEALTHY


if __name__ == "__main__":
    raise SystemExit(_main())
