"""Files the audit is handed or finds in its folders: refused with a clear error, never a crash or a hang.

Real commands (`etd-audit run`, `merge`, in this process or as a subprocess) against a simulator started
once for the module; a shard report written by a real run is the starting point for every doctored input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from audit.cli import main
from audit.csvin import MAX_BYTES, InputError, read_recipients
from audit.exitcodes import ExitCode
from audit.report.jsonreport import MAX_REPORT_BYTES
from audit.simulator import Simulator, generate_tenant
from tests.simconfig import secrets_env, sim_toml

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60  # seconds; a bound on a subprocess, not an expected duration


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulator with one tenant, its config, and one real shard report (workbook + JSON)."""
    root = tmp_path_factory.mktemp("untrusted")
    with (
        Simulator([generate_tenant("contoso", 30, seed=4, scenario="home")]) as sim,
        pytest.MonkeyPatch.context() as mp,
    ):
        for name, value in secrets_env(sim).items():
            mp.setenv(name, value)
        config = root / "etd-audit.toml"
        config.write_text(sim_toml(sim, str(root / "reports")))
        shard = root / "shard"
        assert main(["run", "--config", str(config), "--out", str(shard), "--no-email"]) in (0, 1)
        yield {"root": root, "config": config, "shard": shard, "env": {**os.environ, **secrets_env(sim)}}


def shard_copy(world, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the shard folder: (folder, its JSON, its workbook)."""
    folder = tmp_path / "shard"
    shutil.copytree(world["shard"], folder)
    (json_file,) = folder.glob("etd-audit-*.json")
    return folder, json_file, json_file.with_suffix(".xlsx")


def merge(folder: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    code = main(["merge", str(folder), "--out", str(tmp_path / "merged"), "--no-email"])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# 1. A crash is exit 70, never 1 ("findings"); a malformed shard JSON is a clear refusal (exit 2)


CRASHING = """
import sys
import audit.cli as cli

def crash(args):
    raise ZeroDivisionError("an unforeseen fault")

cli.COMMANDS["merge"] = crash
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_exception_exits_70_with_a_message(tmp_path, verbose):
    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    argv = [sys.executable, str(script), *(["--verbose"] if verbose else []), "merge", str(tmp_path)]
    done = subprocess.run(
        argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=BOUND
    )
    err = done.stderr.decode()
    assert done.returncode == ExitCode.CRASH == 70, err
    assert "internal error" in err and "ZeroDivisionError: an unforeseen fault" in err
    assert ("Traceback" in err) is verbose  # the traceback only with --verbose


def test_a_shard_json_with_an_integer_tenant_id_is_refused(world, tmp_path, capsys):
    folder, json_file, _ = shard_copy(world, tmp_path)
    data = json.loads(json_file.read_text())
    data["tenants"][0]["tenant_id"] = 12345
    json_file.write_text(json.dumps(data))
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(json_file) in err and "tenants[0].tenant_id is an integer, not a string" in err


def test_a_finding_field_of_the_wrong_type_is_refused(world, tmp_path, capsys):
    folder, json_file, _ = shard_copy(world, tmp_path)
    data = json.loads(json_file.read_text())
    assert data["findings"], "the shard should hold findings"
    data["findings"][0]["evidence"] = {"nested": ["object"]}
    json_file.write_text(json.dumps(data))
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(json_file) in err and "findings[0].evidence is an object, not a string" in err


def test_a_shard_json_nested_100000_levels_is_refused(world, tmp_path, capsys):
    folder, json_file, _ = shard_copy(world, tmp_path)
    depth = 100_000
    json_file.write_text('{"schema": 1, "run": ' + "[" * depth + "]" * depth + "}")
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(json_file) in err and "nested too deeply" in err


def test_a_deeply_nested_earlier_report_is_skipped_by_a_run(world, tmp_path, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "etd-audit-20250101T000000Z.json").write_text("[" * 100_000 + "]" * 100_000)
    code = main(["run", "--config", str(world["config"]), "--out", str(out), "--no-email", "--format", "json"])
    assert code in (ExitCode.OK, ExitCode.FINDINGS)
    assert len(list(out.glob("etd-audit-*.json"))) == 2


# ---------------------------------------------------------------------------------------------------
# 2. Pruning deletes only the writer's own reports; the previous-report lookup follows no link


def test_keep_1_prunes_only_reports_the_writer_made(world, tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    old = world["shard"]
    (old_json,) = old.glob("etd-audit-*.json")
    old_reports = []
    for i, stem in enumerate(("etd-audit-20250101T060000Z", "etd-audit-20250108T060000Z-2")):
        for suffix in (".json", ".xlsx"):
            path = out / f"{stem}{suffix}"
            shutil.copyfile(old_json.with_suffix(suffix), path)
            os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
            old_reports.append(path.name)
    strangers = {
        "etd-audit-recipients.csv": "address\nann@contoso.example\n",
        "etd-audit-access-policies.json": '[{"Identity": "x"}]',
        "etd-audit-20250102T060000Z.json": '{"not": "a report"}',  # the report's name, not a report
    }
    for name, text in strangers.items():
        (out / name).write_text(text)
        os.utime(out / name, (1_600_000_000, 1_600_000_000))
    target = elsewhere / "precious.xlsx"
    target.write_bytes(b"someone else's workbook")
    os.symlink(target, out / "etd-audit-20250103T060000Z.xlsx")
    os.utime(out / "etd-audit-20250103T060000Z.xlsx", (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    config = world["root"] / "keep1.toml"
    config.write_text(world["config"].read_text() + "keep = 1\n")

    code = main(["run", "--config", str(config), "--out", str(out), "--no-email"])

    assert code in (ExitCode.OK, ExitCode.FINDINGS)
    left = {p.name for p in out.iterdir()}
    assert set(strangers) | {"etd-audit-20250103T060000Z.xlsx"} <= left  # none of them touched
    assert target.read_bytes() == b"someone else's workbook"
    assert "etd-audit-20250101T060000Z.json" not in left  # the oldest real report went (keep = 1)
    assert {"etd-audit-20250108T060000Z-2.json", "etd-audit-20250108T060000Z-2.xlsx"} <= left


def test_the_previous_report_is_never_a_link(world, tmp_path):
    from audit.report.changes import load_previous

    out = tmp_path / "reports"
    out.mkdir()
    (old_json,) = world["shard"].glob("etd-audit-*.json")
    real = out / "etd-audit-20250101T060000Z.json"
    shutil.copyfile(old_json, real)
    os.utime(real, (1_700_000_000, 1_700_000_000))
    os.symlink(old_json, out / "etd-audit-20250201T060000Z.json")  # newer, but a link
    path, previous, _ = load_previous(out, "etd-audit-20250301T060000Z")
    assert path == real and previous is not None


# ---------------------------------------------------------------------------------------------------
# 11. Merge input sizes: workbook parts that inflate too far, JSON inputs too large; defusedxml in use


def rewrite_member(workbook: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(workbook) as src:
        parts = {i.filename: src.read(i) for i in src.infolist()}
    parts[member] = data
    with zipfile.ZipFile(workbook, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, body in parts.items():
            dst.writestr(name, body)


USERS_PART = "xl/worksheets/sheet3.xml"  # the third sheet: Summary, Findings, Users (checked below)


def users_part(workbook: Path) -> str:
    book = openpyxl.load_workbook(workbook, read_only=True)
    try:
        assert book.sheetnames.index("Users") == 2
    finally:
        book.close()
    return USERS_PART


def test_a_workbook_part_that_inflates_like_a_bomb_is_refused_before_loading(world, tmp_path, capsys):
    folder, _, workbook = shard_copy(world, tmp_path)
    part = users_part(workbook)
    with zipfile.ZipFile(workbook) as z:
        sheet = z.read(part)
    # One cell holding 64 MB of the same letter: a few hundred KB compressed.
    head, _, tail = sheet.partition(b"</sheetData>")
    bomb = head + b'<row r="9999"><c r="A9999" t="inlineStr"><is><t>' + b"A" * (64 * 2**20) + b"</t></is></c></row>"
    rewrite_member(workbook, part, bomb + b"</sheetData>" + tail)
    assert workbook.stat().st_size < 2 * 2**20
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(workbook) in err and part in err and "zip bomb" in err
    assert not (tmp_path / "merged").exists() or not list((tmp_path / "merged").glob("etd-audit-*"))


def test_a_json_input_over_the_limit_is_refused_unread(world, tmp_path, capsys):
    folder, json_file, _ = shard_copy(world, tmp_path)
    with json_file.open("r+b") as fh:
        fh.truncate(MAX_REPORT_BYTES + 1)  # sparse: no disk used, nothing worth reading
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(json_file) in err and "more than a report may have" in err


ENTITY_SHEET = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&b;</t></is></c></row></sheetData></worksheet>"""


def test_workbook_xml_with_entities_is_refused_by_defusedxml(world, tmp_path, capsys):
    # openpyxl parses with defusedxml whenever it is importable (openpyxl/xml/__init__.py, DEFUSEDXML;
    # its README's Security section says to install it against billion laughs and quadratic blowup).
    assert openpyxl.DEFUSEDXML is True
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("defusedxml") for d in dependencies)  # installed with the package, not by chance
    folder, _, workbook = shard_copy(world, tmp_path)
    rewrite_member(workbook, users_part(workbook), ENTITY_SHEET)
    code, err = merge(folder, tmp_path, capsys)
    assert code == ExitCode.USAGE
    assert str(workbook) in err and "EntitiesForbidden" in err


# ---------------------------------------------------------------------------------------------------
# 12. CSV inputs: only regular files, and the size checked before anything is read


def test_a_recipients_fifo_is_refused_without_waiting(world, tmp_path, capsys):
    fifo = tmp_path / "recipients.csv"
    os.mkfifo(fifo)
    argv = [sys.executable, "-m", "audit", "run", "--config", str(world["config"])]
    argv += ["--out", str(tmp_path / "out"), "--recipients", str(fifo), "--no-email"]
    done = subprocess.run(argv, cwd=ROOT, env=world["env"], capture_output=True, timeout=BOUND)
    assert done.returncode == ExitCode.USAGE, done.stderr.decode()
    assert f"{fifo}: not a regular file" in done.stderr.decode()


def test_an_empty_device_is_not_a_csv_file():
    with pytest.raises(InputError, match="not a regular file"):
        read_recipients(os.devnull)


# In a child limited to 400 MiB of address space: reading any of these inputs whole would not fit.
BOUNDED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))
from audit.csvin import InputError, read_recipients
try:
    read_recipients(sys.argv[1])
except InputError as err:
    print(err)
"""


@pytest.mark.parametrize("kind", ["sparse 2 GiB file", "/dev/zero"])
def test_a_huge_or_endless_csv_is_refused_before_it_is_read(tmp_path, kind):
    if kind == "/dev/zero":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        path, says = Path("/dev/zero"), "not a regular file"
    else:
        path, says = tmp_path / "recipients.csv", "larger than 50 MB"
        with path.open("wb") as fh:
            fh.write(b"address\n")
            fh.truncate(2 * 2**30)  # sparse: no disk used
        assert path.stat().st_size > MAX_BYTES
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED_READ, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=BOUND,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert f"{path}: " in done.stdout.decode() and says in done.stdout.decode()


# ---------------------------------------------------------------------------------------------------
# 13. --stem is a plain file name


@pytest.mark.parametrize("stem", ["../../escaped", "sub/name", ".hidden", "etd-audit-*", "a?b", "x[1]", "a\\b"])
@pytest.mark.parametrize("command", ["run", "merge"])
def test_a_stem_that_is_not_a_plain_name_is_a_usage_error(world, tmp_path, capsys, stem, command):
    out = tmp_path / "a" / "b" / "out"
    args = ["--config", str(world["config"])] if command == "run" else [str(world["shard"])]
    with pytest.raises(SystemExit) as stopped:
        main([command, *args, "--out", str(out), "--stem", stem, "--no-email"])
    assert stopped.value.code == ExitCode.USAGE
    assert "--stem" in capsys.readouterr().err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written, inside or out


def test_a_plain_stem_is_still_used(world, tmp_path):
    out = tmp_path / "out"
    code = main(
        ["run", "--config", str(world["config"]), "--out", str(out), "--stem", "weekly report.v2", "--no-email"]
    )
    assert code in (ExitCode.OK, ExitCode.FINDINGS)
    assert {p.name for p in out.iterdir()} == {"weekly report.v2.xlsx", "weekly report.v2.json"}
