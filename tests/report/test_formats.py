"""The output formats come from one registry: a throw-away format added there alone is accepted by the config
and --format, written by the writer and the shard merge, pruned with its report, and named in the mail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import pytest

from audit.report.formats import FORMATS, Format, Rendering, names, parse_formats, writing_order
from tests.report.conftest import STARTED, sample_result


def write_txt(fh: BinaryIO, r: Rendering) -> None:
    """One line per counted finding, from the assessment only."""
    judged = r.assessment
    lines = [judged.verdict.word, *(f"{f.check_id} {f.user_principal_name or '-'}" for f in judged.findings)]
    fh.write(("\n".join(lines) + "\n").encode())


@pytest.fixture
def txt(monkeypatch) -> Format:
    fmt = Format("txt", write_txt)
    monkeypatch.setitem(FORMATS, "txt", fmt)
    return fmt


def test_the_registry_lists_the_formats_in_order_json_written_last() -> None:
    assert names() == ("xlsx", "json", "csv")
    assert [f.name for f in writing_order(["json", "csv", "xlsx"])] == ["xlsx", "csv", "json"]
    assert parse_formats([" JSON", "xlsx", "json"]) == ("json", "xlsx")
    with pytest.raises(ValueError, match="unknown report format pdf; choose from xlsx, json, csv"):
        parse_formats(["pdf"])


def test_a_new_format_is_one_registry_entry(txt, write, tmp_path: Path, capsys) -> None:
    from audit.cli import build_parser
    from audit.config import load_config
    from audit.delivery.message import attachment_path, render_text

    assert build_parser().parse_args(["run", "--config", "x.toml", "--format", "txt,json"]).format == ("txt", "json")
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["run", "--config", "x.toml", "--format", "pdf"])
    assert refused.value.code == 2
    assert "unknown format pdf; use xlsx,json,csv,txt" in capsys.readouterr().err
    config = tmp_path / "etd-audit.toml"
    config.write_text(
        "[[tenants]]\n"
        'name = "contoso"\n'
        'tenant_id = "72f988bf-0000-4000-8000-000000000001"\n'
        'client_id = "0d3c6e2a-0000-4000-8000-000000000002"\n'
        'client_secret_env = "CONTOSO_AUDIT_SECRET"\n'
        "[remediation_app]\n"
        'app_id = "11111111-2222-4333-8444-555555555555"\n'
        "[audit]\n"
        'formats = ["TXT"]\n'
    )
    assert load_config(config).audit.formats == ("txt",)  # audit.formats

    result = sample_result()
    files = write(result, stem="etd-audit-20250303T060000Z", formats=["txt", "json"])
    assert list(files.paths) == ["json", "txt"]  # the registry's order
    text = files.path("txt").read_text()
    assert text.splitlines()[0] == files.assessment.verdict.word
    assert len(text.splitlines()) == 1 + len(files.assessment.findings)
    assert attachment_path(files) == files.json  # the first format written, in the registry's order
    assert str(files.path("txt")) in render_text(result, files)  # the message names every file

    # Pruning counts the new format's files as part of their report.
    folder = files.json.parent
    later = sample_result(started=STARTED.replace(day=10))
    os.utime(files.json, (1, 1))
    os.utime(files.path("txt"), (1, 1))
    newer = write(later, stem="etd-audit-20250310T060000Z", formats=["txt", "json"], keep=0)
    assert sorted(p.name for p in folder.iterdir()) == [newer.json.name, newer.path("txt").name]


def test_the_shard_merge_writes_a_new_format(txt, write, tmp_path: Path) -> None:
    from audit.merge import merge

    shard = write(sample_result(), out_dir=tmp_path / "shard-0", stem="etd-audit-20250303T060000Z")
    merged = merge([shard.json.parent], tmp_path / "merged", formats=["txt"], email=False)
    assert list(merged.report.paths) == ["txt"]
    lines = merged.report.path("txt").read_text().splitlines()
    assert lines[1:] == [f"{f.check_id} {f.user_principal_name or '-'}" for f in merged.assessment.findings]
    assert len(lines) == 1 + len(shard.assessment.findings)
