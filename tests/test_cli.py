"""The command line as a user meets it: exit codes, files written, readiness verdicts, over the simulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from audit.checks import catalogue
from audit.cli import main
from audit.simulator import Simulator
from tests.e2e.tenant_builder import E3, TenantBuilder, as_built
from tests.simconfig import secrets_env, sim_config, write_config_file


def write_config(
    path: Path, sim, builders, monkeypatch, *, secrets: dict | None = None, home: str | None = None, extra: str = ""
) -> Path:
    """The builder tenants' configuration as a TOML file for the command line; `secrets` (tenant name ->
    value) puts a different secret in a tenant's variable; `extra` goes under [audit]."""
    placed = [(sim, b.spec) for b in builders]
    for name, secret in secrets_env(placed).items():
        monkeypatch.setenv(name, secret)
    for name, secret in (secrets or {}).items():
        monkeypatch.setenv(Simulator.secret_env_name(name), secret)
    domains = {b.name: (b.domain,) for b in builders}
    return write_config_file(sim_config(placed, path.parent, **as_built(home=home, domains=domains)), path, extra)


def healthy(name: str) -> TenantBuilder:
    b = TenantBuilder(name).remediation_app().application(audience="AzureADMultipleOrgs")
    b.user("amy", license=E3)
    b.user("room-7", mailbox="room", enabled=False)
    return b


def test_demo_reports_every_check_with_evidence(tmp_path, capsys):
    code = main(["demo", "--users", "300", "--out", str(tmp_path)])
    assert code == 1  # the demo tenants hold critical findings, above the default fail_on = high
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(re.fullmatch(r"etd-audit-\d{8}T\d{6}Z\.(json|xlsx)", f) for f in files)
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    found = {f["check_id"] for f in data["findings"]}
    assert found == {c.id for c in catalogue()}
    assert all(f["evidence"] and f["fix"] and f["predicted_error"] for f in data["findings"])
    assert {t["status"] for t in data["tenants"]} == {"ok"}
    assert "wrote" in capsys.readouterr().out


def test_run_exit_codes_clean_findings_and_partial(sim_factory, tmp_path, monkeypatch):
    clean = healthy("tailspin")
    unlicensed = healthy("adatum")
    unlicensed.user("ursula", mailbox=None)
    sim = sim_factory([clean.spec, unlicensed.spec])

    config = write_config(tmp_path / "clean.toml", sim, [clean], monkeypatch, home=clean.tenant_id)
    assert main(["run", "--config", str(config), "--no-email"]) == 0

    config = write_config(tmp_path / "found.toml", sim, [unlicensed], monkeypatch, home=unlicensed.tenant_id)
    assert main(["run", "--config", str(config), "--no-email"]) == 1
    # The same finding under a higher threshold no longer fails the run.
    config = write_config(
        tmp_path / "lenient.toml",
        sim,
        [unlicensed],
        monkeypatch,
        home=unlicensed.tenant_id,
        extra='fail_on = "critical"',
    )
    assert main(["run", "--config", str(config), "--no-email"]) == 0

    config = write_config(
        tmp_path / "partial.toml", sim, [clean, unlicensed], monkeypatch, secrets={"adatum": "not-the-secret"}
    )
    out = tmp_path / "partial"
    assert main(["run", "--config", str(config), "--no-email", "--out", str(out)]) == 3
    data = json.loads(next(out.glob("*.json")).read_text())
    status = {t["name"]: (t["status"], t["error"]) for t in data["tenants"]}
    assert status["tailspin"][0] == "ok"
    assert status["adatum"][0] == "failed" and "AADSTS7000215" in status["adatum"][1]


def test_run_with_broken_config_names_the_key(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[tenants]]\nname = "x"\ntenant_id = "contoso.example"\nclient_id = "abc"\n'
        'client_secret = "hunter2-literal"\n[remediation_app]\napp_id = "a"\n'
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "client_secret" in err and "hunter2-literal" not in err


def test_readiness_ready_not_ready_and_could_not_check(sim_factory, tmp_path, monkeypatch, capsys):
    ready = healthy("tailspin")
    unconsented = TenantBuilder("woodgrove")
    unconsented.user("wes", license=E3)
    sim = sim_factory([ready.spec, unconsented.spec])

    config = write_config(tmp_path / "ready.toml", sim, [ready], monkeypatch, home=ready.tenant_id)
    assert main(["readiness", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True
    statuses = {i["item"]: i["status"] for i in report["tenants"][0]["items"]}
    assert statuses["remediation app holds Mail.ReadWrite and Organization.Read.All"] == "PASS"
    assert "FAIL" not in statuses.values()

    config = write_config(tmp_path / "not-ready.toml", sim, [unconsented], monkeypatch)
    assert main(["readiness", "--config", str(config)]) == 1
    text = capsys.readouterr().out
    assert "NOT READY" in text
    assert re.search(r"FAIL\s+remediation app consented in this tenant", text)
    assert re.search(r"FAIL\s+remediation app enabled\s+no: the app is not consented", text)

    config = write_config(tmp_path / "cannot.toml", sim, [ready], monkeypatch, secrets={"tailspin": "wrong"})
    assert main(["readiness", "--config", str(config)]) == 2
    assert "AADSTS7000215" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["run"], ["demo", "--users", "many"], ["run", "--config", "x.toml", "--shard", "3/2"]]
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["sim", "--rtt", "0.04"], "need --limits"),
        (["sim", "--limits", "--latency", "outlook=fast"], "is not CLASS=SECONDS"),
        (["sim", "--limits", "--rtt", "-1"], "rtt -1.0"),
    ],
)
def test_sim_limit_options_are_checked_before_serving(argv, says, capsys):
    assert main(argv) == 2
    assert says in capsys.readouterr().err
