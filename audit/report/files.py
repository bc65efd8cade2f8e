"""Never lose a report: write to a hidden temporary file, then rename it into place.

Every output is first written in full to a temporary file in the target folder (created 0o640, so
there is no moment with wider permissions), flushed to disk, and only then renamed over its final
name with os.replace. A run that dies part-way leaves at most a hidden ``.<name>.<random>.tmp`` file
(removed by a later run) and never a truncated report; older reports are pruned only after the new
ones are in place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import signal
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("audit")

FILE_MODE = 0o640
DIR_MODE = 0o750
STALE_TEMP_SECONDS = 3600
LOCK_NAME = ".etd-audit.lock"
LOCK_WAIT_SECONDS = 600.0  # writing and pruning take seconds; a holder longer than this is stuck


class FolderBusy(Exception):
    """Another run kept the report folder's lock for longer than we wait."""


class ReportWriteError(Exception):
    """The report could not be written (disk full, read-only folder). `written` lists what did appear."""

    def __init__(self, message: str, written: list[Path]):
        super().__init__(message)
        self.written = written


def write_failure(out_dir: Path, err: OSError, written: list[Path]) -> ReportWriteError:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the folder is on a read-only file system",
        errno.EACCES: "permission denied",
    }.get(err.errno or 0, err.strerror or str(err))
    done = f"; written before the error: {', '.join(p.name for p in written)}" if written else ""
    return ReportWriteError(
        f"cannot write the report into {out_dir}: {reason}. Earlier reports are untouched and no temporary file "
        f"was left{done}. Free space or make the folder writable, then run again.",
        written,
    )


def ensure_dir(path: Path) -> None:
    if path.is_dir():
        return
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode is narrowed by the umask; say exactly what we mean


def check_writable(path: Path) -> None:
    """Create the folder and a scratch file in it, or raise OSError: better before a long run than after."""
    ensure_dir(path)
    probe = path / f".write-check.{secrets.token_hex(4)}.tmp"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    probe.unlink()


@contextlib.contextmanager
def folder_lock(out_dir: Path, wait: float = LOCK_WAIT_SECONDS):
    """Hold the report folder's advisory lock (flock) while the previous report is read, the new one written
    and old ones pruned: two runs into one folder take turns, and none prunes a report another compares with.

    The lock is on the folder itself, so it leaves nothing behind. NFS cannot lock a folder (flock(2):
    an exclusive lock there needs a file open for writing); there a hidden lock file in the folder is
    used. Either way the lock belongs to an open descriptor and ends with the process, however it ends.
    """
    fd = _lock_descriptor(out_dir)
    try:
        deadline = time.monotonic() + wait
        told = False
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise FolderBusy(
                    f"another etd-audit run has been writing into {out_dir} for over {wait:.0f} s. "
                    "Wait for it to finish (or stop it), then run again."
                )
            if not told:
                log.info("another etd-audit run is writing into %s; waiting for it to finish", out_dir)
                told = True
            time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_descriptor(out_dir: Path) -> int:
    cloexec = getattr(os, "O_CLOEXEC", 0)
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | cloexec)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # can this file system lock a folder at all?
        fcntl.flock(fd, fcntl.LOCK_UN)
        return fd
    except BlockingIOError:
        return fd  # it can: another run holds it now
    except OSError:
        os.close(fd)
    return os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | cloexec, FILE_MODE)


def stage(target: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a complete temporary file beside `target` and return its path (not yet renamed)."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:  # opened inside the try: a signal right after the open must not leave the file behind
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


# Held while one report's files are renamed into place. A stop that ends the process while some other
# thread may be writing a report (the scheduler runs its job in a thread of its own, where signals are
# not held) takes it first, for good: see hold_commits_for_exit.
_COMMITS = threading.Lock()
EXIT_WAIT_SECONDS = 60.0


def commit(staged: list[tuple[Path, Path]], done: list[Path] | None = None) -> None:
    """Rename each staged temp file over its target, in order, then make the renames durable.

    SIGTERM and SIGINT wait until all renames are done, and so does a process exit that goes through
    hold_commits_for_exit: a report is never left half-renamed, whichever thread writes it. `done`
    collects the targets renamed so far, for the caller to name when a rename fails."""
    with _signals_held(), _COMMITS:
        for temp, target in staged:
            os.replace(temp, target)
            if done is not None:
                done.append(target)
    if staged:
        _fsync_dir(staged[0][1].parent)


def hold_commits_for_exit(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Wait for a report being renamed into place, then let no other start: call it just before exiting.

    Never released: the process is about to end, and a thread left behind must not begin renaming a
    report that the exit would cut in half. Returns False when a rename hung for `timeout` seconds."""
    if _COMMITS.acquire(timeout=timeout):
        return True
    log.error("a report was still being renamed into place after %g s; exiting anyway", timeout)
    return False


@contextlib.contextmanager
def _signals_held():
    held = {signal.SIGTERM, signal.SIGINT}
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def discard_stem(out_dir: Path, stem: str) -> None:
    """Remove every temporary file of this report (also one staged but not yet recorded by the caller)."""
    for temp in out_dir.glob(f".{stem}.*.tmp"):
        temp.unlink(missing_ok=True)


def report_suffixes() -> tuple[str, ...]:
    """The suffixes of the report formats (audit.report.formats.FORMATS), e.g. ('.xlsx', '.json', '.csv')."""
    from audit.report.formats import suffixes  # late: the formats import the writers, which import this module

    return suffixes()


def free_stem(out_dir: Path, base: str, suffixes: tuple[str, ...] | None = None) -> str:
    """`base`, or `base-2`, `base-3`...: the first stem of which no file exists yet in out_dir."""
    suffixes = report_suffixes() if suffixes is None else suffixes
    stem, n = base, 2
    while any((out_dir / f"{stem}{suffix}").exists() for suffix in suffixes):
        stem, n = f"{base}-{n}", n + 1
    return stem


def write_whole(out_dir: Path, stem: str, writers: Mapping[str, Callable[[BinaryIO], None]]) -> list[Path]:
    """Write `<stem>.<format>` for each format (in order) whole: all staged first, then renamed together.

    When any of them fails, none is left behind, not even a temporary file; the error is raised."""
    staged: list[tuple[Path, Path]] = []
    try:
        for fmt, write in writers.items():
            target = out_dir / f"{stem}.{fmt}"
            staged.append((stage(target, write), target))
        commit(staged)
    except BaseException:
        discard(staged)
        discard_stem(out_dir, stem)
        raise
    return [target for _, target in staged]


def discard(staged: list[tuple[Path, Path]]) -> None:
    for temp, _ in staged:
        temp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(out_dir: Path, family: str, now: float | None = None) -> None:
    """Temporary files left by a run that was killed: removed once they are an hour old."""
    now = time.time() if now is None else now
    for temp in out_dir.glob(f".{family}*.tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_SECONDS:
                temp.unlink()
        except OSError as err:
            log.warning("could not remove the stale temporary file %s: %s", temp, err)


TRIAGE_PREFIX = "etd-audit-triage-"  # triage results share the folder but are not audit reports


# The shape of a default stem: the family, the run's UTC start and, when two runs share a second, -2, -3...
STAMP = r"\d{8}T\d{6}Z(?:-\d+)?"


def is_regular_file(path: Path) -> bool:
    """A regular file itself, not a link to one (lstat): what the writer made, and may replace or delete."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def report_stems(out_dir: Path, family: str) -> dict[str, list[Path]]:
    """Files named exactly <family><UTC stamp>.<a report format>, regular files only, grouped by stem."""
    name = re.compile(re.escape(family) + STAMP)
    suffixes = report_suffixes()
    stems: dict[str, list[Path]] = {}
    for path in out_dir.glob(f"{family}*"):
        if (
            path.suffix in suffixes
            and name.fullmatch(path.stem)
            and not path.name.startswith(TRIAGE_PREFIX)
            and is_regular_file(path)
        ):
            stems.setdefault(path.stem, []).append(path)
    return stems


def prune(
    out_dir: Path, family: str, current: str, keep: int, is_report: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Delete all but the newest `keep` earlier reports of the family (the current one is never counted).

    Only files the writer would have named (see report_stems) are candidates. With `is_report`, a stem whose
    JSON file it rejects is left alone, all of its files: whatever it is, this run did not write it.
    """
    stems = report_stems(out_dir, family)
    stems.pop(current, None)

    def age(item: tuple[str, list[Path]]) -> tuple[float, str]:
        return max(p.lstat().st_mtime for p in item[1]), item[0]

    removed: list[Path] = []
    for stem, paths in sorted(stems.items(), key=age, reverse=True)[max(keep, 0) :]:
        json_file = next((p for p in paths if p.suffix == ".json"), None)
        if is_report is not None and json_file is not None and not is_report(json_file):
            log.warning("not pruning %s: its JSON is not an etd-audit report", stem)
            continue
        for path in paths:
            try:
                path.unlink()
                removed.append(path)
            except OSError as err:
                log.warning("could not prune the old report %s: %s", path, err)
    return removed
