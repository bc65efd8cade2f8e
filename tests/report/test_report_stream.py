"""The Users sheet streamed during a run: the same workbook as one written after the run, and no spool left.

The runner feeds a UsersStream as each tenant finishes (in any order); the workbook writer then puts the
other sheets around it. Every test here compares that workbook with write_reports' own after-the-run
workbook, cell by cell, values and styles.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from copy import copy
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from conftest import CATALOGUE, LOOKUPS, STARTED, finding, sample_result, snapshot, user

from audit.config import load_config
from audit.models import MailboxProbe, RunResult, TenantResult, TenantStatus
from audit.report import AcceptedException, load_exceptions, write_reports
from audit.report.stream import UsersStream
from audit.report.workbook import SAMPLE_ROWS
from audit.runner import RunOptions, run
from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, sim_toml

EXCEPTIONS = [
    AcceptedException("no-exchange-license", "printer", "it-ops", STARTED.date() + timedelta(days=30), user="u-bob"),
    AcceptedException(
        "app-missing-permission", "re-consent", "secops", STARTED.date() + timedelta(days=30), tenant="fabrikam"
    ),
]


def styled_cells(path: Path) -> dict:
    """Everything a reader sees of a workbook: per sheet its cells (value, font, fill, border, alignment,
    number format, protection), column widths, row heights, panes, filter, print setup, merges, charts."""
    wb = openpyxl.load_workbook(path)
    book = {"sheets": wb.sheetnames, "active": wb.active.title}
    for ws in wb.worksheets:
        cells = [  # copy(): a cell's style is a proxy, which compares equal to nothing but its own target
            (c.coordinate, c.value, *(copy(s) for s in (c.font, c.fill, c.border, c.alignment, c.protection)))
            + (c.number_format,)
            for row in ws.iter_rows()
            for c in row
        ]
        book[ws.title] = {
            "cells": cells,
            "widths": {k: d.width for k, d in ws.column_dimensions.items()},
            "heights": {k: d.height for k, d in ws.row_dimensions.items() if d.height},
            "panes": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "print": (ws.print_area, ws.print_title_rows, ws.page_setup.fitToWidth, ws.page_setup.orientation),
            "merged": sorted(str(m) for m in ws.merged_cells.ranges),
            "charts": len(ws._charts),
        }
    return book


def spool_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("openpyxl."))


@pytest.fixture
def spool(tmp_path, monkeypatch) -> Path:
    """openpyxl's temporary files (one per write-only sheet) go here, where the test can see them."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def streamed(result: RunResult, order: list[int], exceptions=EXCEPTIONS) -> UsersStream:
    users = UsersStream(exceptions, LOOKUPS, now=result.finished)
    for index in order:  # the order the tenants finish in, not the result's
        users.add(index, result.tenants[index])
    users.end()
    return users


def write_both(tmp_path: Path, result: RunResult, users: UsersStream, **options):
    options = {"catalogue": CATALOGUE, "lookups": LOOKUPS, "stem": "report", "now": result.finished, **options}
    try:
        with_stream = write_reports(result, tmp_path / "streamed", users=users, formats=("xlsx", "json"), **options)
    finally:
        users.discard()
    after = write_reports(result, tmp_path / "after", formats=("xlsx", "json"), **options)
    return with_stream, after


def big_result() -> RunResult:
    """Three tenants, 320 + 410 + 12 users: the width sample (SAMPLE_ROWS) spans the first two."""
    tenants = []
    for n, (name, count, width) in enumerate((("alpha", 320, 8), ("bravo", 410, 44), ("charlie", 12, 3))):
        tenant_id = f"{n + 1:08d}-0000-4000-8000-000000000000"
        people = [
            user(
                f"{name}-{i}",
                f"{'x' * (width if i % 50 == 7 else 2)}{i}@{name}.com",
                f"User {i}",
                exchange=None if i % 9 == 0 else "Enabled",
            )
            for i in range(count)
        ]
        probes = {u.id: MailboxProbe("mailbox", "user") for u in people[::3]}
        findings = [finding(tenant_id, "no-exchange-license", "high", u) for u in people if not u.licenses]
        tenants.append(
            TenantResult(
                name=name,
                tenant_id=tenant_id,
                status=TenantStatus.OK,
                users_scanned=count,
                users_in_directory=count,
                mailboxes_probed=len(probes),
                findings=findings,
                snapshot=snapshot(name, tenant_id, people, probes),
            )
        )
    return RunResult(STARTED, STARTED + timedelta(minutes=2), "0.1.0", True, tenants)


def test_streamed_workbook_equals_the_one_written_after_the_run(tmp_path, caplog):
    result = sample_result()  # contoso, fabrikam (partial) and northwind (failed: no snapshot, no rows)
    users = streamed(result, [2, 0, 1])
    with caplog.at_level(logging.DEBUG, logger="audit"):
        with_stream, after = write_both(tmp_path, result, users, exceptions=EXCEPTIONS)
    assert [ws.title for ws in users.workbook.worksheets] == openpyxl.load_workbook(after.xlsx).sheetnames
    assert "Users sheet was written during the run" in caplog.text and "writing it again" not in caplog.text
    assert len(with_stream.assessment.accepted) == 2
    book = styled_cells(with_stream.xlsx)
    assert book == styled_cells(after.xlsx)
    findings_column = [c[1] for c in book["Users"]["cells"] if c[0].startswith("O")]
    assert "no-exchange-license (accepted)" in findings_column and "on-premises-mailbox" in findings_column


def test_width_sample_spans_tenants_that_finish_out_of_order(tmp_path, caplog):
    result = big_result()
    assert len(result.tenants[0].snapshot.users.value) < SAMPLE_ROWS
    exceptions = [
        AcceptedException("no-exchange-license", "kiosks", "it", STARTED.date() + timedelta(days=1), tenant="bravo")
    ]
    with caplog.at_level(logging.DEBUG, logger="audit"):
        with_stream, after = write_both(
            tmp_path, result, streamed(result, [1, 2, 0], exceptions), exceptions=exceptions
        )
    assert "Users sheet was written during the run" in caplog.text
    book = styled_cells(with_stream.xlsx)
    assert book == styled_cells(after.xlsx)
    assert len(book["Users"]["cells"]) == 15 * (1 + 320 + 410 + 12)
    # bravo's long names sit in the sample only because its rows are sampled after alpha's 320
    assert book["Users"]["widths"]["B"] > 20


def test_sheet_is_written_again_when_the_assessment_splits_findings_otherwise(tmp_path, spool, caplog):
    """An exception that expires between a tenant's end and the report (a run across midnight)."""
    result = sample_result()
    users = streamed(result, [0, 1, 2])
    later = STARTED + timedelta(days=31)  # both exceptions expired: nothing accepted any more
    with caplog.at_level(logging.INFO, logger="audit"):
        with_stream, after = write_both(tmp_path, result, users, exceptions=EXCEPTIONS, now=later)
    assert "writing it again" in caplog.text
    assert with_stream.assessment.accepted == ()
    assert styled_cells(with_stream.xlsx) == styled_cells(after.xlsx)
    assert spool_files(spool) == []


def test_discarded_stream_leaves_no_spool_and_stops_its_writer(spool):
    result = big_result()
    users = UsersStream((), LOOKUPS)
    users.add(1, result.tenants[1])  # 410 rows, then 320: past the sample, so rows go to disk
    users.add(0, result.tenants[0])
    deadline = time.monotonic() + 30  # a bound on waiting, not a speed assertion
    while len(users.tenants) < 2 or not spool_files(spool):
        assert time.monotonic() < deadline, "the writer never started on the rows"
        time.sleep(0.01)
    assert users._writer.is_alive()  # waits for tenant 2 or the end: the run is still going
    users.discard()
    assert not users._writer.is_alive()
    assert spool_files(spool) == []


def test_no_stream_without_the_xlsx_format(sim_factory, small_tenant, tmp_path, monkeypatch, spool):
    sim = sim_factory([small_tenant])
    config = tmp_path / "config.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")))
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    seen = {}

    def progress(phase, *_):
        if phase == "writing the report":
            seen[formats] = [t.name for t in threading.enumerate() if t.name == "users-sheet"]

    for formats in (("json",), ("xlsx", "json")):
        run(load_config(config), RunOptions(formats=formats, probe="none", email=False), progress=progress)
    assert seen == {("json",): [], ("xlsx", "json"): ["users-sheet"]}
    assert spool_files(spool) == []


@pytest.fixture
def three_tenants(sim_factory, tmp_path, monkeypatch):
    """Three simulated tenants (the width sample spans two) and an exceptions file that accepts a
    tenant-wide check in one and one user's finding in another."""
    specs = [
        generate_tenant("contoso", 380, 1, "home"),
        generate_tenant("fabrikam", 260, 2, "healthy"),
        generate_tenant("adatum", 150, 3, "unconsented"),
    ]
    sim = sim_factory(specs)
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(
        "".join(
            f'[[exception]]\ncheck_id = "{check}"\ntenant = "{tenant}"\nreason = "r"\nowner = "o"\n'
            "expires = 2999-12-31\n"
            for check, tenant in (("app-not-consented", "adatum"), ("no-exchange-license", "fabrikam"))
        )
    )
    config = tmp_path / "config.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")) + f'exceptions_file = "{exceptions}"\n')
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    return load_config(config), exceptions


def test_run_streams_the_same_workbook_as_one_written_after_it(three_tenants, tmp_path, spool, caplog):
    config, exceptions = three_tenants
    with caplog.at_level(logging.DEBUG, logger="audit"):
        outcome = run(config, RunOptions(stem="report", probe="none", email=False))
    assert "Users sheet was written during the run" in caplog.text
    assert outcome.assessment.accepted, "the exceptions file must accept a finding for this test to mean much"
    after = write_reports(
        outcome.result,
        tmp_path / "after",
        stem="report",
        exceptions=load_exceptions(exceptions),
        now=outcome.assessment.assessed,
    )
    book = styled_cells(outcome.report.xlsx)
    assert book == styled_cells(after.xlsx)
    assert len(book["Users"]["cells"]) > 15 * SAMPLE_ROWS
    assert any(str(c[1]).endswith("(accepted)") for c in book["Users"]["cells"] if c[0].startswith("O"))
    assert spool_files(spool) == []


def test_report_not_written_leaves_no_spool(three_tenants, spool):
    config, _ = three_tenants
    spooled = []

    def progress(phase, *_):
        if phase == "writing the report":  # every tenant is in: the writer has rows on disk or soon will
            deadline = time.monotonic() + 30
            while not spool_files(spool) and time.monotonic() < deadline:
                time.sleep(0.01)
            spooled.extend(spool_files(spool))

    with pytest.raises(ValueError, match="hidden file"):
        run(config, RunOptions(stem=".hidden", probe="none", email=False), progress=progress)
    assert spooled and spool_files(spool) == []


def test_interrupt_during_the_run_leaves_no_spool(three_tenants, spool):
    config, _ = three_tenants
    done = []

    def progress(phase, done_count=0, total=None, *_):
        if phase == "tenants" and done_count == 2:  # two of three in: the Users rows are being written
            deadline = time.monotonic() + 30
            while not spool_files(spool) and time.monotonic() < deadline:
                time.sleep(0.01)
            done.extend(spool_files(spool))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, RunOptions(probe="none", email=False), progress=progress)
    assert done and spool_files(spool) == []


def test_run_of_no_tenant_streams_a_users_sheet_of_headers_only(tmp_path):
    """A shard that holds no tenant: the stream ends without a row, like users_table of an empty run."""
    result = RunResult(STARTED, STARTED + timedelta(seconds=1), "0.1.0", True, [])
    with_stream, after = write_both(tmp_path, result, streamed(result, []))
    book = styled_cells(with_stream.xlsx)
    assert book == styled_cells(after.xlsx)
    assert [c[1] for c in book["Users"]["cells"]][:2] == ["Tenant", "User principal name"]
    assert len(book["Users"]["cells"]) == 15
