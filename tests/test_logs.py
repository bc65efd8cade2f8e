"""Secrets read by the audit are redacted from every log line, whatever code formats them."""

from __future__ import annotations

import logging

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
