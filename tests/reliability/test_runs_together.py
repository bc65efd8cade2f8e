"""Runs that cannot break each other, through the real command.

- Runs into one folder take turns at the folder's advisory lock (flock) while they read the previous
  report, write theirs and prune: never two writers, never a pruned report someone compares with.
- A full disk or a read-only folder: earlier reports intact, no temporary file left, a clear error, exit 2.
- The sign-in service going away mid-run: the tenant signing in there is partial with the reason, the
  others complete.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import openpyxl
import pytest

from audit.cli import main
from audit.report import write_reports
from audit.report.files import FolderBusy, ReportWriteError
from audit.simulator import generate_tenant
from tests.report.conftest import sample_result
from tests.simconfig import secrets_env, sim_toml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(sim_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sim = sim_factory([generate_tenant("contoso", 10, seed=11)])
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")))
    return sim, config, tmp_path / "reports"


def command(config: Path, *extra: str) -> list[str]:
    return ["run", "--config", str(config), "--no-email", "--probe", "none", *extra]


def compared_with(xlsx: Path) -> str:
    wb = openpyxl.load_workbook(xlsx, read_only=True)
    try:
        return next(r[1] for r in wb["Summary"].iter_rows(values_only=True) if r and r[0] == "Compared with")
    finally:
        wb.close()


HOLD = """
import sys, time
from pathlib import Path
from audit.report.files import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    child.stdout.close()
    return child


def test_a_run_waits_for_another_writing_into_its_folder(setup) -> None:
    sim, config, reports = setup
    holder = hold_lock(reports, 2.0)
    started = time.monotonic()

    code = main(command(config))

    waited = time.monotonic() - started
    assert holder.wait(10) == 0
    assert code in (0, 1)
    assert waited >= 1.0, waited  # it did not write while the other held the folder
    assert len(list(reports.glob("etd-audit-*.json"))) == 1


def test_a_lock_held_by_a_killed_run_is_released_with_it(setup) -> None:
    sim, config, reports = setup
    holder = hold_lock(reports, 600)
    holder.kill()  # SIGKILL: no cleanup code runs; the kernel drops the lock with the process
    holder.wait(10)
    started = time.monotonic()

    assert main(command(config)) in (0, 1)
    assert time.monotonic() - started < 30


def test_a_writer_that_never_finishes_stops_the_next_with_a_clear_message(tmp_path) -> None:
    folder = tmp_path / "reports"
    holder = hold_lock(folder, 30)
    try:
        with pytest.raises(FolderBusy, match=f"another etd-audit run has been writing into {folder} for over 0 s"):
            write_reports(sample_result(), folder, lock_wait=0.3)
    finally:
        holder.kill()
        holder.wait(10)
    assert list(folder.iterdir()) == []


def test_overlapping_runs_take_turns_and_each_compares_with_the_one_before(setup, tmp_path) -> None:
    sim, config, reports = setup
    runs = 4
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "audit", *command(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(runs)
    ]
    outputs = [c.communicate(timeout=180)[1] for c in children]
    assert all(c.returncode in (0, 1) for c in children), outputs

    written = sorted(reports.glob("etd-audit-*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(written) == runs  # none overwrote another: each got its own name under the lock
    chain = [compared_with(p.with_suffix(".xlsx")) for p in written]
    assert chain == ["no earlier report in this folder", *(p.name for p in written[:-1])]


# ---------------------------------------------------------------------------------------------------
# Full disk and read-only folder, on a real small file system


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        f.write(b"\0" * max(0, free - leave))
    return filler


# openpyxl's write-only sheets leave their row generators unfinished when the disk refuses a write;
# Python reports them when they are collected. That is the library's clean-up, not a file left behind.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_keeps_earlier_reports_and_leaves_no_temp_file(setup, small_disk, capsys) -> None:
    sim, config, _ = setup
    reports = small_disk / "reports"
    assert main(command(config, "--out", str(reports))) in (0, 1)
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    filler = fill(small_disk, leave=4096)
    capsys.readouterr()

    code = main(command(config, "--out", str(reports)))

    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert f"cannot write the report into {reports}: the disk is full" in err
    assert "Earlier reports are untouched and no temporary file was left" in err
    assert {p.name: p.read_bytes() for p in reports.iterdir()} == before  # nothing new, nothing pruned

    filler.unlink()
    assert main(command(config, "--out", str(reports))) in (0, 1)
    newest = max(reports.glob("*.xlsx"), key=lambda p: p.stat().st_mtime_ns)
    assert compared_with(newest) == next(n for n in before if n.endswith(".json"))


def test_a_folder_turned_read_only_is_a_clear_write_error(small_disk) -> None:
    reports = small_disk / "reports"
    write_reports(sample_result(), reports)
    before = {p.name: p.read_bytes() for p in reports.iterdir()}
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    with pytest.raises(ReportWriteError, match="the folder is on a read-only file system") as caught:
        write_reports(sample_result(), reports)

    assert caught.value.written == []
    assert {p.name: p.read_bytes() for p in reports.iterdir()} == before


# ---------------------------------------------------------------------------------------------------
# The sign-in service going away mid-run


class Relay:
    """A TCP relay in front of the simulator: one tenant's sign-in host, which the test can switch off."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the other thread
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def test_the_sign_in_service_going_away_mid_run_makes_only_its_tenant_partial(
    sim_factory, tmp_path, monkeypatch
) -> None:
    specs = [generate_tenant("contoso", 40, seed=12), generate_tenant("fabrikam", 40, seed=13)]
    sim = sim_factory(specs, faults="token_ttl=1,latency=0.2")  # Graph refuses a token after 1 s
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    relay = Relay(("127.0.0.1", sim.port))
    text = sim_toml(sim, str(tmp_path / "reports"))
    first = text.index('authority_host = "')  # contoso's, the first tenant
    end = text.index("\n", first)
    config = tmp_path / "config.toml"
    config.write_text(text[:first] + f'authority_host = "https://127.0.0.1:{relay.port}"' + text[end:])

    def cut_after_first_tokens() -> None:
        deadline = time.monotonic() + 60
        # Both tenants signed in and reading their users: the first tokens were issued.
        while sim.counters.snapshot()["by_route"].get("users.list", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        relay.close()

    cutter = threading.Thread(target=cut_after_first_tokens)
    cutter.start()
    code = main(["run", "--config", str(config), "--no-email", "--probe", "all"])
    cutter.join()

    (report,) = (tmp_path / "reports").glob("etd-audit-*.json")
    tenants = {t["name"]: t for t in json.loads(report.read_text())["tenants"]}
    assert code == 3
    assert tenants["contoso"]["status"] == "partial", tenants["contoso"]
    assert "a new access token could not be obtained" in tenants["contoso"]["error"]
    assert f"cannot reach the sign-in service at 127.0.0.1:{relay.port}" in tenants["contoso"]["error"]
    assert tenants["fabrikam"]["status"] == "ok", tenants["fabrikam"]


def test_a_write_that_fails_after_part_of_the_report_appeared_names_what_was_written(tmp_path) -> None:
    folder = tmp_path / "reports"
    (folder / "etd-audit-part.json").mkdir(parents=True)  # the JSON cannot take its name: the rename fails
    (folder / "etd-audit-part.json" / "keep").write_text("x")

    with pytest.raises(ReportWriteError, match="written before the error: etd-audit-part.xlsx") as caught:
        write_reports(sample_result(), folder, stem="etd-audit-part")

    assert [p.name for p in caught.value.written] == ["etd-audit-part.xlsx"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_the_command_exits_3_when_part_of_the_report_was_written(setup, capsys) -> None:
    sim, config, reports = setup
    (reports / "etd-audit-part.json").mkdir(parents=True)
    (reports / "etd-audit-part.json" / "keep").write_text("x")

    code = main(command(config, "--stem", "etd-audit-part"))

    assert code == 3
    assert "written before the error: etd-audit-part.xlsx" in " ".join(capsys.readouterr().err.split())
