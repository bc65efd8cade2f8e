"""What an admin sees in the terminal: `etd-audit` run as a real subprocess, under a pseudo-terminal and
through pipes, its output read back as a screen (pyte, a terminal emulator) or as plain lines."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from pathlib import Path

import pyte
import pytest

from audit.console import Progress

ETD_AUDIT = Path(sys.executable).with_name("etd-audit")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) ")
VERDICT = re.compile(r"^NOT SAFE: \d+ critical, \d+ high, \d+ medium in 4 tenants$")


def run_in_pty(argv: list[str], cwd: Path, columns: int = 160, rows: int = 60, timeout: float = 240) -> tuple[int, str]:
    """Run argv on a pseudo-terminal of that size; its exit code and everything it wrote, decoded."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        os.chdir(cwd)
        os.environ.update(COLUMNS=str(columns), LINES=str(rows), TERM="xterm-256color")
        os.environ.pop("NO_COLOR", None)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", errors="replace")


def frames(output: str, columns: int = 160, rows: int = 60, step: int = 100):
    """The screen as a person would have seen it while the output arrived, every `step` characters."""
    screen = pyte.Screen(columns, rows)
    stream = pyte.Stream(screen)
    for start in range(0, len(output), step):
        stream.feed(output[start : start + step])
        yield [line.rstrip() for line in screen.display if line.strip()]


def screen_of(output: str, columns: int = 160, rows: int = 60) -> list[str]:
    screen = pyte.Screen(columns, rows)
    pyte.Stream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


@pytest.fixture(scope="module")
def on_a_terminal(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, list[str], Path]:
    out = tmp_path_factory.mktemp("pty")
    code, output = run_in_pty([str(ETD_AUDIT), "demo", "--users", "2500", "--out", str(out)], out)
    return code, output, screen_of(output), out


def test_a_terminal_shows_live_progress_lines_with_totals(on_a_terminal) -> None:
    code, output, _, _ = on_a_terminal
    assert code == 1, output[-2000:]
    seen = list(frames(output))
    tenant_line = re.compile(r"^\S? *(contoso|fabrikam|northwind|tailspin): ")
    # Several tenants in flight at once, each on a line of its own, under a line for the whole run.
    busy = [f for f in seen if len({tenant_line.match(line).group(1) for line in f if tenant_line.match(line)}) >= 2]
    assert busy, "never two tenant lines on the screen at once"
    assert any(re.search(r"tenants +━*.* [0-4]/4 +\d+%", line) for f in busy for line in f)
    # Totals and percentages where the total is known: the directory's user count ($count).
    lines = [line for f in seen for line in f]
    # Any tenant will do: on a loaded machine one tenant's list may be read before its count arrives.
    sizes = "(contoso: users +\\S+ +\\d+/2500|fabrikam: users +\\S+ +\\d+/625|northwind: users +\\S+ +\\d+/500)"
    assert any(re.search(sizes + r" +\d+%", line) for line in lines)
    assert any(re.search(r"(fabrikam|contoso|northwind): mailboxes +\S+ +\d+/\d+ +\d+%", line) for line in lines)
    assert any("writing the report" in line for line in lines)


def test_the_terminal_ends_on_clean_result_lines(on_a_terminal) -> None:
    code, _, screen, out = on_a_terminal
    assert not any("━" in line or "0/?" in line for line in screen), "a progress line was left on the screen"
    first = next(i for i, line in enumerate(screen) if re.match(r"^contoso +ok ", line))
    tenants, verdict, written = screen[first : first + 4], screen[first + 4], screen[first + 5 : first + 7]
    assert [line.split()[0] for line in tenants] == ["contoso", "fabrikam", "northwind", "tailspin"]
    assert all(re.search(r"users +\d+ +\d+ findings \(", line) for line in tenants), tenants
    assert VERDICT.match(verdict), verdict
    assert written == [f"wrote {p}" for p in sorted(out.glob("etd-audit-*.*"), key=lambda p: p.suffix != ".xlsx")]
    # Log records printed while the bars were live start their own line, never glued to a bar; only
    # the results follow the last of them.
    assert all(LOG_LINE.match(line) or "INFO" not in line for line in screen)
    assert any(LOG_LINE.match(line) for line in screen[:first]) and len(screen) == first + 7


def test_without_a_terminal_progress_is_plain_periodic_log_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ETD_AUDIT), "demo", "--users", "300", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "\x1b[" not in done.stdout + done.stderr and "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), [line for line in lines if not LOG_LINE.match(line)]
    assert any(re.search(r"INFO contoso: mailboxes: \d+/\d+ \(100%\)$", line) for line in lines)
    assert any(line.endswith("INFO tenants: 4/4 (100%)") for line in lines)
    assert any(line.endswith("INFO writing the report: started") for line in lines)
    out = done.stdout.splitlines()
    assert VERDICT.match(out[4]), out
    assert out[5].startswith("wrote ") and out[5].endswith(".xlsx")


def test_json_logs_on_a_terminal_stay_one_object_a_line(tmp_path: Path) -> None:
    """--log-format json is for machines: no bars in between, even on a terminal."""
    code, output = run_in_pty(
        [str(ETD_AUDIT), "demo", "--users", "60", "--out", str(tmp_path), "--log-format", "json"], tmp_path
    )
    assert code == 1
    assert "━" not in output
    assert any(line.startswith('{"time"') for line in output.splitlines())


class _Tty(io.StringIO):
    """What the progress display writes, kept; it answers as a terminal does."""

    def isatty(self) -> bool:
        return True


def test_records_logged_from_many_threads_never_leave_a_progress_line(monkeypatch) -> None:
    # In-process and at a width where records wrap: threads log while their bars move and the display
    # redraws itself. Each record must print whole above the lines, and the lines must go at the end.
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)  # the console handler's stream is the process's stderr
    handler = logging.StreamHandler(tty)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    # Handlers an earlier in-process CLI run left on the root (audit.logs.setup) may hold a stream pytest
    # has closed since; each record would then print logging's error report here too.
    stray = [h for h in root.handlers if type(h).__module__ != "_pytest.logging"]
    for h in stray:
        root.removeHandler(h)
    root.addHandler(handler)  # as audit.logs.setup does: the root's console handler
    logger = logging.getLogger("audit.stress")
    logger.setLevel(logging.INFO)
    names = [f"tenant{i}" for i in range(4)]

    def work(name: str) -> None:
        for n in range(60):  # a line comes and goes around each record: the live region's height changes
            progress("users", n, 60, name)
            logger.info("%s record %02d %s", name, n, "wraps onto a second line " * 5)
            progress("done", 0, None, name)

    try:
        with Progress() as progress:
            assert progress.live
            threads = [threading.Thread(target=work, args=(name,)) for name in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        root.removeHandler(handler)
        for h in stray:
            root.addHandler(h)
    screen = pyte.Screen(100, 800)
    pyte.Stream(screen).feed(tty.getvalue().replace("\n", "\r\n"))  # a terminal's ONLCR
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert not [line for line in lines if "━" in line], "a progress line was left on the screen"
    # Every record once, each starting a line of its own, nothing glued before it.
    starts = Counter(line[:17] for line in lines if re.match(r"tenant\d record \d\d ", line))
    assert starts == Counter(f"{name} record {n:02d}" for name in names for n in range(60))
    words = {"wraps", "onto", "a", "second", "line"}
    assert all(re.match(r"tenant\d record ", line) or set(line.split()) <= words for line in lines), lines
