"""Files on disk: the JSON contract, permissions, formats, keep/prune, and never losing a report."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CONTOSO, LOOKUPS, STARTED, sample_result

from audit.report.tables import Lookups

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FINDING_KEYS = {
    "tenant_id": str,
    "check_id": str,
    "severity": str,
    "user_principal_name": (str, type(None)),
    "user_id": (str, type(None)),
    "display_name": (str, type(None)),
    "predicted_error": str,
    "cause": str,
    "fix": str,
    "evidence": str,
    "first_seen": str,
    "subject": (str, type(None)),  # added in schema 1: the role, domain or credential of a tenant finding
}


def iso_ok(value: str) -> bool:
    return datetime.fromisoformat(value).tzinfo is not None


def test_json_schema_keys_and_types(write):
    files = write(sample_result())
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["schema"] == 1
    assert set(data) >= {"schema", "run", "tenants", "findings", "accepted"}
    run = data["run"]
    assert set(run) == {"started", "finished", "version", "probes"}
    assert iso_ok(run["started"]) and iso_ok(run["finished"]) and isinstance(run["probes"], bool)
    assert isinstance(run["version"], str)
    for t in data["tenants"]:
        assert isinstance(t["name"], str) and isinstance(t["tenant_id"], str)
        assert t["status"] in ("ok", "failed", "partial")
        assert t["error"] is None or isinstance(t["error"], str)
        assert isinstance(t["users_scanned"], int) and isinstance(t["mailboxes_probed"], int)
        assert all(set(n) == {"check_id", "reason", "read_in"} for n in t["not_evaluated"])
        assert t["failure"] in (None, "authentication", "graph")
        assert "users_in_directory" in t and isinstance(t["not_assessed"], dict)
    statuses = {t["name"]: (t["status"], t["error"]) for t in data["tenants"]}
    assert statuses["northwind"][0] == "failed" and "AADSTS7000215" in statuses["northwind"][1]
    assert data["tenants"][1]["not_evaluated"] == [
        {"check_id": "recipient-not-in-directory", "reason": "no recipients list was given", "read_in": None}
    ]
    assert len(data["findings"]) == 4
    for f in data["findings"]:
        assert set(f) == set(FINDING_KEYS)
        for key, kind in FINDING_KEYS.items():
            assert isinstance(f[key], kind), key
        assert f["severity"] in ("critical", "high", "medium", "low") and iso_ok(f["first_seen"])
    tenant_level = next(f for f in data["findings"] if f["check_id"] == "app-missing-permission")
    assert tenant_level["user_id"] is None and tenant_level["user_principal_name"] is None


def test_files_are_0640_and_new_folder_0750(write, tmp_path):
    old = os.umask(0o077)  # a strict umask must not leave the group without read access
    try:
        files = write(sample_result(), out_dir=tmp_path / "new" / "reports", formats=("xlsx", "json", "csv"))
    finally:
        os.umask(old)
    for path in (files.xlsx, files.json, files.csv):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert stat.S_IMODE((tmp_path / "new" / "reports").stat().st_mode) == 0o750


def test_formats(write, tmp_path):
    files = write(sample_result(), formats=("csv",))
    assert files.xlsx is None and files.json is None and files.csv.exists()
    assert sorted(p.name for p in files.csv.parent.iterdir()) == [files.csv.name]
    header = files.csv.read_bytes().decode("utf-8-sig").splitlines()[0]
    assert header.startswith("Tenant,Tenant id,Check,Severity,User principal name")
    with pytest.raises(ValueError, match="pdf"):
        write(sample_result(), formats=("xlsx", "pdf"))


def test_default_stem_is_a_utc_timestamp_and_never_overwrites(write):
    now = datetime(2025, 3, 3, 7, 8, 9, tzinfo=UTC)
    one = write(sample_result(), now=now)
    two = write(sample_result(), now=now)
    assert one.json.name == "etd-audit-20250303T070809Z.json"
    assert two.json.name == "etd-audit-20250303T070809Z-2.json" and one.json.exists()


# The smallest JSON an earlier run could have written: no tenant, no finding.
EMPTY_REPORT = json.dumps(
    {
        "schema": 1,
        "run": {"started": "2024-01-01T00:00:00Z", "finished": "2024-01-01T00:01:00Z", "version": "0", "probes": True},
        "tenants": [],
        "findings": [],
        "accepted": [],
    }
)


def make_old_reports(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        stem = f"etd-audit-2024010{i}T000000Z"
        for suffix in (".xlsx", ".json"):
            path = folder / f"{stem}{suffix}"
            path.write_text(EMPTY_REPORT if suffix == ".json" else "old")
            os.utime(path, (1_700_000_000 + i * 100, 1_700_000_000 + i * 100))
        stems.append(stem)
    return stems


def test_keep_prunes_the_oldest_after_writing(write, tmp_path):
    folder = tmp_path / "reports"
    stems = make_old_reports(folder, 5)
    (folder / "notes.txt").write_text("not a report")
    files = write(sample_result(), keep=2)
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(
        [f"{s}{x}" for s in stems[-2:] for x in (".xlsx", ".json")] + [files.xlsx.name, files.json.name, "notes.txt"]
    )


def test_a_failed_write_leaves_nothing_and_prunes_nothing(write, tmp_path):
    folder = tmp_path / "reports"
    make_old_reports(folder, 3)
    before = sorted(p.name for p in folder.iterdir())

    def broken(_sku):
        raise RuntimeError("licence table exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        write(sample_result(), keep=0, lookups=Lookups(broken, LOOKUPS.mailbox_plan_ids))
    assert sorted(p.name for p in folder.iterdir()) == before  # no new file, no temp, nothing pruned


def test_stale_temp_files_are_cleaned_up(write, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    stale = folder / ".etd-audit-20240101T000000Z.xlsx.dead.tmp"
    fresh = folder / ".etd-audit-20240102T000000Z.xlsx.live.tmp"
    for path in (stale, fresh):
        path.write_text("partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    write(sample_result())
    assert not stale.exists() and fresh.exists()  # a young one may belong to a run still writing


CHILD = textwrap.dedent("""
    import os, sys, time, zipfile
    from datetime import timedelta
    from pathlib import Path
    sys.path[:0] = [{root!r}, {here!r}]
    import conftest
    from audit.report import write_reports

    out, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def block(note):
        marker.write_text(note)
        time.sleep(600)

    if mode == "inside-xlsx":  # killed while the workbook is being zipped
        original, calls = zipfile.ZipFile.writestr, [0]
        def writestr(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == 4:
                block("zipping")
            return original(self, *args, **kwargs)
        zipfile.ZipFile.writestr = writestr
    else:  # killed with every temporary file complete, just before the first rename
        os.replace = lambda src, dst: block(str(src))

    result = conftest.sample_result(started=conftest.STARTED + timedelta(days=7))
    write_reports(result, out, stem="etd-audit-20250310T060000Z", formats=("xlsx", "json", "csv"),
                  catalogue=conftest.CATALOGUE, lookups=conftest.LOOKUPS)
""")


@pytest.mark.parametrize("mode", ["inside-xlsx", "before-rename"])
def test_killed_run_leaves_the_previous_report_intact(write, tmp_path, mode):
    folder = tmp_path / "reports"
    previous = write(sample_result(), stem="etd-audit-20250303T060000Z", formats=("xlsx", "json", "csv"))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT), here=str(HERE)))
    marker = tmp_path / "marker"

    child = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(marker), mode], cwd=ROOT, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60  # a bound on waiting, not an assertion about speed
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child never reached the blocking point"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stderr.close()

    after = {p.name: p for p in folder.iterdir()}
    assert not [n for n in after if n.startswith("etd-audit-20250310")]  # no report with the new stem
    for name, data in before.items():
        assert after[name].read_bytes() == data  # previous report byte-identical
    for name in set(after) - set(before):  # at most a hidden temp file that no reader mistakes for a report
        assert name.startswith(".") and name.endswith(".tmp"), name

    # the next run still finds the intact previous report
    files = write(sample_result(started=STARTED + timedelta(days=7)))
    assert files.assessment.changes.previous == previous.json


def test_summary_line_formats(write):
    from conftest import clean_result

    from audit.report import summary_line

    clean = clean_result()
    assert summary_line(clean, write(clean).assessment) == "contoso — 0 findings — safe"
    result = sample_result()
    result.tenants = result.tenants[:1]
    result.tenants[0].not_assessed = {}
    assert summary_line(result, write(result).assessment).startswith("contoso — 3 findings (2 high")
    assert CONTOSO not in summary_line(result, write(result).assessment)


def test_report_written_time_defaults_to_now(tmp_path):
    from conftest import CATALOGUE

    from audit.report import write_reports

    files = write_reports(sample_result(), tmp_path, catalogue=CATALOGUE, lookups=LOOKUPS)
    stamp = datetime.strptime(files.json.stem.removeprefix("etd-audit-"), "%Y%m%dT%H%M%SZ")
    stamp = stamp.replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(hours=1)


def test_triage_results_are_neither_pruned_nor_taken_as_previous_reports(tmp_path):
    from audit.report import files as fs
    from audit.report.changes import previous_reports

    (tmp_path / "etd-audit-triage-20260101T000000Z.json").write_text("{}")
    (tmp_path / "etd-audit-triage-20260101T000000Z.xlsx").write_bytes(b"x")
    (tmp_path / "etd-audit-20260101T000000Z.json").write_text(EMPTY_REPORT)
    assert [p.name for p in previous_reports(tmp_path, "etd-audit-20260201T000000Z")] == [
        "etd-audit-20260101T000000Z.json"
    ]
    removed = fs.prune(tmp_path, "etd-audit-", "etd-audit-20260201T000000Z", keep=0)
    assert [p.name for p in removed] == ["etd-audit-20260101T000000Z.json"]
    assert (tmp_path / "etd-audit-triage-20260101T000000Z.xlsx").exists()


def test_earlier_reports_are_taken_newest_first_by_modification_time_then_by_name(tmp_path):
    import os

    from audit.report.changes import previous_reports

    # A stem given with --stem carries no time, so the file's modification time decides; the name breaks a tie.
    for day, mtime in (("01", 300), ("02", 200), ("03", 100), ("04", 100)):
        path = tmp_path / f"etd-audit-202601{day}T000000Z.json"
        path.write_text(EMPTY_REPORT)
        os.utime(path, (mtime, mtime))
    assert [p.name[16:18] for p in previous_reports(tmp_path, "etd-audit-20260201T000000Z")] == ["01", "02", "04", "03"]


def test_discard_stem_removes_a_staged_file_the_caller_never_recorded(tmp_path):
    from audit.report import files as fs

    stem = "etd-audit-20260301T000000Z"
    staged = fs.stage(tmp_path / f"{stem}.xlsx", lambda fh: fh.write(b"complete"))
    other = fs.stage(tmp_path / "etd-audit-20260302T000000Z.json", lambda fh: fh.write(b"{}"))
    assert staged.exists()  # e.g. SIGTERM arrived between stage() returning and the append
    fs.discard_stem(tmp_path, stem)
    assert not staged.exists() and other.exists()  # another run's temp file is not touched
