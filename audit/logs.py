"""Logging set-up: plain lines or JSON lines, with every known secret masked in whatever is written.

Redaction happens in the formatters (the whole line, traceback and stack included) and in the streams
print() writes to, so neither a careless message nor a traceback can carry a secret. With JSON logs,
every line on stderr is a JSON object: log records, fatal errors, uncaught exceptions and any stray
line printed there. Records carry `tenant` and `phase` when the code that logged ran inside `context()`.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_secrets: set[str] = set()
_lock = threading.Lock()
_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("etd_audit_tenant", default=None)
_phase: contextvars.ContextVar[str | None] = contextvars.ContextVar("etd_audit_phase", default=None)
_format = "text"  # the format setup() chose: "text" or "json"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def register_secret(value: str | None) -> None:
    """Remember a secret so that no log line can carry it, whatever code formats it."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    if not _secrets:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    return text


def _redacted(value: Any) -> Any:
    """A JSON-ready value with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


# ---- tenant and phase of a record ----------------------------------------------------------------


@contextmanager
def context(*, tenant: str | None = None, phase: str | None = None) -> Iterator[None]:
    """Records logged inside the block (in this thread) carry this tenant and phase; a field not given stays."""
    tokens = []
    if tenant is not None:
        tokens.append((_tenant, _tenant.set(tenant)))
    if phase is not None:
        tokens.append((_phase, _phase.set(phase)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str | None]:
    """The tenant and phase in force here, to hand to worker threads through adopt()."""
    return {"tenant": _tenant.get(), "phase": _phase.get()}


def adopt(values: dict[str, str | None]) -> None:
    """Give a worker thread the tenant and phase of the thread that started it (a pool's initializer)."""
    _tenant.set(values.get("tenant"))
    _phase.set(values.get("phase"))


# ---- formatters ----------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Masks secrets in the message itself, for handlers that format with someone else's formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO message`, then any traceback; the whole text passes through redact()."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, tenant and phase where they apply, the
    record's `fields` (extra={"fields": {...}}), and error/stack text; every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("tenant", _tenant), ("phase", _phase)):
            value = getattr(record, key, None) or var.get()
            if value:
                entry[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_redacted(entry), ensure_ascii=False)


def json_line(message: str, level: str = "error", logger: str = "etd-audit", **fields: Any) -> str:
    """A JSON log line built without a LogRecord (printed lines, fatal errors), redacted."""
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": level,
        "logger": logger,
        "message": message,
    }
    for key, value in current().items():
        if value:
            entry[key] = value
    entry.update({k: v for k, v in fields.items() if k not in entry})
    return json.dumps(_redacted(entry), ensure_ascii=False)


# ---- what print() writes -------------------------------------------------------------------------


class RedactingStream:
    """Stands in for sys.stdout / sys.stderr: everything written passes through redact().

    With as_json, text is cut into lines and each line that is not already a JSON object becomes one
    (level "error": what reaches stderr outside the log is a problem report), so a collector never sees
    a plain line. Everything else (isatty, fileno, encoding ...) is the wrapped stream's.
    """

    def __init__(self, stream: Any, as_json: bool = False) -> None:
        self.raw = stream
        self.as_json = as_json
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if not self.as_json:
            self.raw.write(redact(text))
            return len(text)
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        text = line.rstrip("\r")
        if not text.strip():
            return
        if text.lstrip().startswith("{"):
            try:
                already = isinstance(json.loads(text), dict)
            except ValueError:
                already = False
            if already:
                self.raw.write(redact(text) + "\n")
                return
        self.raw.write(json_line(text) + "\n")

    def finish(self) -> None:
        """Write out a last line that never got its newline."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self._emit(pending)
        self.flush()

    def flush(self) -> None:
        try:
            self.raw.flush()
        except (OSError, ValueError):
            pass  # closed at interpreter exit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _wrap(name: str, as_json: bool) -> RedactingStream:
    stream = getattr(sys, name)
    if isinstance(stream, RedactingStream):
        stream.finish()
        stream.as_json = as_json
        return stream
    wrapped = RedactingStream(stream, as_json)
    setattr(sys, name, wrapped)
    return wrapped


@atexit.register
def _finish_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RedactingStream):
            stream.finish()


def fatal(message: str, **fields: Any) -> None:
    """The one line a command prints when it cannot go on: `etd-audit: ...`, or a JSON record.

    fields (e.g. exit_code=2) go into the JSON record only.
    """
    if _format == "json":
        out = sys.stderr.raw if isinstance(sys.stderr, RedactingStream) else sys.stderr
        out.write(json_line(message, **fields) + "\n")
        out.flush()
    else:
        print(f"etd-audit: {redact(message)}", file=sys.stderr)


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("audit").critical("unexpected error: %s", kind.__name__, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "a thread"
    logging.getLogger("audit").critical(
        "unexpected error in %s: %s",
        name,
        args.exc_type.__name__,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def setup(verbose: bool = False, fmt: str = "text") -> None:
    """Log to stderr in `fmt` ("text" or "json"); redact print() output; log uncaught exceptions."""
    global _format
    _format = fmt
    _wrap("stdout", as_json=False)
    err = _wrap("stderr", as_json=fmt == "json")
    handler = logging.StreamHandler(err.raw)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("audit").setLevel(logging.DEBUG if verbose else logging.INFO)
    # msal and urllib3 log request details at DEBUG; keep them quiet even with --verbose.
    for noisy in ("msal", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python warnings become records, formatted (and redacted) like the rest
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
