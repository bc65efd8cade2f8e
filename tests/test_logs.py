"""Secrets read by the audit are redacted from every log line, whatever code formats them."""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from audit import logs
from audit.auth import TokenProvider
from audit.simulator import generate_tenant


def test_the_client_secret_is_redacted_once_the_audit_has_read_it(sim_factory, make_config, tmp_path, capsys):
    spec = generate_tenant("contoso", 20, seed=3, scenario="healthy")
    secret = spec["clients"][0]["secret"]
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    logs.setup(verbose=False, fmt="text")
    log = logging.getLogger("audit.test")

    TokenProvider(config.tenants[0], verify=str(sim.ca_path)).token()
    log.warning("careless code formats %s into a message", secret)
    log.warning("%s", {"nested": [f"prefix-{secret}-suffix"]})
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("***") == 2 and "careless code formats *** into a message" in err


def test_json_logs_redact_message_and_traceback(capsys):
    logs.register_secret("webhook-secret-url-123")
    logs.setup(verbose=False, fmt="json")
    log = logging.getLogger("audit.test")
    try:
        raise ValueError("failed posting to webhook-secret-url-123")
    except ValueError:
        log.exception("post to %s failed", "webhook-secret-url-123")
    err = capsys.readouterr().err
    # the message, and in the traceback both the source line and the exception text
    assert "webhook-secret-url-123" not in err and err.count("***") == 3


def record_with_traceback(text: str) -> logging.LogRecord:
    try:
        raise RuntimeError(text)
    except RuntimeError:
        return logging.getLogger("audit.test").makeRecord(
            "audit.test", logging.ERROR, __file__, 1, "failed: %s", (text,), sys.exc_info()
        )


def test_both_formatters_redact_the_traceback_as_well_as_the_message() -> None:
    logs.register_secret("formatter-secret-991")
    text = logs.TextFormatter().format(record_with_traceback("formatter-secret-991"))
    assert "formatter-secret-991" not in text and text.count("***") == 2  # the message and the exception text
    assert "Traceback (most recent call last)" in text
    entry = json.loads(logs.JsonFormatter().format(record_with_traceback("formatter-secret-991")))
    assert "formatter-secret-991" not in json.dumps(entry) and "RuntimeError: ***" in entry["error"]


def test_json_records_carry_tenant_and_phase_also_from_worker_threads(capsys) -> None:
    logs.setup(verbose=False, fmt="json")
    log = logging.getLogger("audit.test")
    with logs.context(tenant="contoso", phase="collect"):
        log.info("in the tenant's thread")
        with ThreadPoolExecutor(2, initializer=logs.adopt, initargs=(logs.current(),)) as pool:
            list(pool.map(lambda n: log.info("worker %d", n), range(2)))
        with logs.context(phase="checks"):
            log.info("checking")
    log.info("after the tenant")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    tags = [(r.get("tenant"), r.get("phase")) for r in records]
    assert tags == [("contoso", "collect")] * 3 + [("contoso", "checks"), (None, None)]
