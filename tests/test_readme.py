"""The README's two set-up commands are the ones CI and users run; its check table lists every check."""

from __future__ import annotations

import re
from pathlib import Path

from audit.checks import catalogue

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", README)


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in commands()
    assert "pytest" in ci and "'.[test]'" in ci


def test_quick_start_installs_and_runs_the_demo():
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/etd-audit demo" in commands()


def test_check_table_lists_every_check_with_its_prediction():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z-]+)` \|.*$", README, re.M)}
    for check in catalogue():
        assert check.id in rows, check.id
        assert check.predicts.split(" (")[0].split(" / ")[0] in rows[check.id], check.id
