"""The triage writes its files through the report's own staging: whole files, all of them or none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.report import files as fs
from audit.triage import TriageResult, write_triage

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)


def test_free_stem_counts_up_past_every_taken_name(tmp_path: Path) -> None:
    assert fs.free_stem(tmp_path, "etd-audit-triage-x") == "etd-audit-triage-x"
    (tmp_path / "etd-audit-triage-x.csv").write_text("")
    (tmp_path / "etd-audit-triage-x-2.json").write_text("")
    assert fs.free_stem(tmp_path, "etd-audit-triage-x") == "etd-audit-triage-x-3"


def test_write_whole_leaves_nothing_when_one_format_fails(tmp_path: Path) -> None:
    def broken(fh) -> None:
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fs.write_whole(tmp_path, "stem", {"json": lambda fh: fh.write(b"{}"), "csv": broken})
    assert list(tmp_path.iterdir()) == []

    written = fs.write_whole(tmp_path, "stem", {"json": lambda fh: fh.write(b"{}"), "csv": lambda fh: None})
    assert written == [tmp_path / "stem.json", tmp_path / "stem.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stem.csv", "stem.json"]


def test_a_second_triage_in_the_same_second_gets_its_own_stem(tmp_path: Path) -> None:
    result = TriageResult(Path("log.csv"), ["Recipient", "Error"], [], [], [], [], 0)
    first = write_triage(result, tmp_path, ("json", "csv"), NOW)
    second = write_triage(result, tmp_path, ("json",), NOW)
    assert [p.name for p in first] == [
        "etd-audit-triage-20250602T093000Z.json",
        "etd-audit-triage-20250602T093000Z.csv",
    ]
    assert [p.name for p in second] == ["etd-audit-triage-20250602T093000Z-2.json"]
    assert not list(tmp_path.glob(".*.tmp"))
