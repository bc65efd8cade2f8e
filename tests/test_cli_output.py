"""The command line's arguments, help and closing lines, and the progress events as plain log lines."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pytest

from audit.cli import build_parser, main, verdict_line
from audit.console import Progress
from tests.test_cli import healthy, write_config

CONFIG = ["--config", "c.toml"]


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "--log-format", "json", "run", *CONFIG],
        ["run", *CONFIG, "-v", "--log-format", "json"],
        ["-v", "run", *CONFIG, "--log-format", "json"],
        ["readiness", "--log-format", "json", *CONFIG, "--verbose"],
        ["triage", *CONFIG, "errors.csv", "-v", "--log-format", "json"],
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.verbose is True and args.log_format == "json"


def test_global_options_keep_their_defaults_when_absent_after_the_command() -> None:
    args = build_parser().parse_args(["run", *CONFIG])
    assert args.verbose is False and args.log_format == "text"
    assert build_parser().parse_args(["-v", "run", *CONFIG]).verbose is True  # not reset by the subcommand


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_says_what_it_does() -> None:
    parser = build_parser()
    for name, sub in {"": parser, **_subparsers(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"etd-audit {name} {action.option_strings or action.dest}: no help text"


def test_demo_offers_only_what_a_demo_can_use(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--recipients" not in text and "--no-email" not in text and "--config" not in text
    assert "--users" in text and "--probe" in text


def test_triage_help_lists_columns_outcomes_and_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["triage", "--help"])
    text = capsys.readouterr().out
    for column in ("mailbox", "upn", "email", "remediation error"):
        assert column in text
    for outcome in ("fix in the tenant", "nothing to fix", "no cause found", "unknown error", "not assessed"):
        assert outcome in text
    assert re.search(r"exit codes: 0 .*; 1 .*; 2 .*; 3 ", " ".join(text.split()))


def test_a_run_ends_on_the_verdict_the_paths_and_the_permission_to_grant(sim_factory, tmp_path, monkeypatch, capsys):
    tenant = healthy("tailspin")
    tenant.user("ursula", mailbox=None)
    # Without Application.Read.All the audit cannot read the remediation app: its checks are not evaluated.
    tenant.spec["clients"][0]["roles"] = [r for r in tenant.spec["clients"][0]["roles"] if r != "Application.Read.All"]
    sim = sim_factory([tenant.spec])
    config = write_config(tmp_path / "c.toml", sim, [tenant], monkeypatch, home=tenant.tenant_id)
    code = main(["run", "--config", str(config), "--no-email", "--out", str(tmp_path / "out"), "-v"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith("tailspin ")
    assert re.fullmatch(
        r"NOT SAFE: (\d+ (critical|high|medium|low)(, )?)+ in 1 tenant; \d+ item\(s\) could not be assessed", lines[1]
    )
    assert lines[2] == f"wrote {next((tmp_path / 'out').glob('*.xlsx'))}"
    assert lines[3] == f"wrote {next((tmp_path / 'out').glob('*.json'))}"
    assert re.fullmatch(
        r"not evaluated: \d+ checks in tailspin: grant the audit app Application\.Read\.All "
        r"\(application permission, admin consent\); 2 of them: .*remediation_app\.access_policy_file",
        lines[4],
    ), lines[4]


def test_the_verdict_line_for_each_verdict() -> None:
    from types import SimpleNamespace

    from audit.models import Finding, Severity
    from audit.report.verdict import INCOMPLETE, NOT_SAFE, SAFE, Gap, Verdict

    result = SimpleNamespace(tenants=[object(), object()])
    gap = Gap("contoso", "check app-disabled not evaluated", "grant it the application permission X.Read.All")

    def files(word, findings=(), gaps=()):
        return SimpleNamespace(verdict=Verdict(word, "", tuple(gaps)), findings=list(findings))

    assert verdict_line(result, files(SAFE)) == "SAFE: no findings in 2 tenants"
    assert verdict_line(result, files(INCOMPLETE, gaps=[gap])) == (
        "INCOMPLETE: no findings in 2 tenants, but 1 item(s) could not be assessed"
    )
    high = Finding("t", "no-exchange-license", Severity.HIGH, "a@b.example", "1", "A", "e", "c", "f", "ev")
    assert verdict_line(result, files(NOT_SAFE, [high, high])) == "NOT SAFE: 2 high in 2 tenants"


def test_plain_progress_lines_carry_totals_and_are_not_repeated(caplog) -> None:
    progress = Progress(live=False, interval=3600)
    with caplog.at_level(logging.INFO, logger="audit"), progress:
        progress("users", 999, 5000, "contoso")
        progress("users", 1998, 5000, "contoso")  # within the interval: not logged
        progress("users", 5000, 5000, "contoso")  # the phase completed: logged
        progress("probes", 40, None, "contoso")
        progress("probes", 4800, 4800, "contoso")
        progress("probes", 4800, 4800, "contoso")  # the same again: not logged twice
        progress("writing the report", 0, None)
        progress("done", 0, None, "contoso")
    assert [r.getMessage() for r in caplog.records] == [
        "contoso: users: 999/5,000 (20%)",
        "contoso: users: 5,000/5,000 (100%)",
        "contoso: mailboxes: 40",
        "contoso: mailboxes: 4,800/4,800 (100%)",
        "writing the report: started",
    ]


def test_progress_on_a_non_terminal_stream_is_plain(tmp_path: Path) -> None:
    with (tmp_path / "log").open("w") as stream:
        assert Progress(stream).live is False


def test_the_readme_lists_the_columns_triage_and_recipients_accept() -> None:
    from audit.csvin import ADDRESS_COLUMNS, ERROR_COLUMNS

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [name for name in (*ADDRESS_COLUMNS, *ERROR_COLUMNS) if f"`{name}`" not in readme]
    assert not missing, f"README does not name the accepted columns {missing}"
    for outcome in ("fix in the tenant", "nothing to fix", "no cause found", "unknown error", "not assessed"):
        assert f"`{outcome}`" in readme
