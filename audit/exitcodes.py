"""Every exit code etd-audit returns, in one place (the README's "Exit codes" paragraph explains them)."""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1  # findings at or above fail_on, or not ready
    USAGE = 2  # usage, config or auth error
    PARTIAL = 3  # some tenant failed or could not be fully assessed, or the report could not be mailed
    CRASH = 70  # an unexpected error: a bug or an input nobody foresaw (sysexits' EX_SOFTWARE)
    INTERRUPTED = 128 + signal.SIGINT  # Ctrl-C (SIGINT), as a shell reports a process it ended (130)
    TERMINATED = 128 + signal.SIGTERM  # SIGTERM: docker stop, kill, systemd (143)


def stopped_by(signum: int) -> ExitCode:
    """The exit code of a process that a stop signal ended."""
    return ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED
