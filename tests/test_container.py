"""What can be checked about the crontab, the Dockerfile and the Kubernetes manifests without a
container engine or a cluster: they agree with the config, the CLI accepts the commands they run,
the build context holds what the package build needs, the package installs into a fresh venv, and
the installed scheduler starts and stops the way the image runs it."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.config import ScheduleConfig, load_config
from audit.schedule import default_heartbeat_file, heartbeat_ok, write_heartbeat

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
EXAMPLE = REPO / "config" / "example.toml"
CRONJOB = REPO / "deploy" / "cronjob.yaml"
BOUND = 120.0  # upper bound for a subprocess step; never an expected duration


def wait_for(condition, what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {bound:g} s")
        time.sleep(0.05)


def cli_parser() -> argparse.ArgumentParser:
    try:
        from audit.cli import build_parser
    except ImportError as exc:
        pytest.skip(f"the CLI (audit.cli.build_parser) is not importable yet: {exc}")
    return build_parser()


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = cli_parser()
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"etd-audit does not accept {argv!r} (exit {exc.code})") from None


def example_cron() -> str:
    if not EXAMPLE.exists():
        pytest.skip("config/example.toml is not written yet")
    return tomllib.loads(EXAMPLE.read_text())["schedule"]["cron"]


# ---------------------------------------------------------------------------------------------------
# Dockerfile reading


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD/HEALTHCHECK CMD."""
    assert args.startswith("["), f"use the exec form (a JSON array), not {args!r}"
    return json.loads(args)


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negate, re.compile(regex.strip("/") + "$")))
    return rules


def in_build_context(relative: str, rules=None) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent folders wins."""
    rules = rules if rules is not None else dockerignore_patterns()
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def build_context_files() -> list[str]:
    rules = dockerignore_patterns()
    files = []
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and in_build_context(relative, rules):
            files.append(relative)
    return sorted(files)


# ---------------------------------------------------------------------------------------------------
# crontab


def crontab_line() -> list[str]:
    lines = [
        line
        for line in (REPO / "crontab").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(lines) == 1, f"expected one schedule line, found {lines}"
    return lines[0].split(None, 6)


def test_crontab_runs_weekly_with_the_example_configs_expression() -> None:
    fields = crontab_line()
    assert " ".join(fields[:5]) == example_cron()
    assert fields[5] == "etd-audit"  # /etc/cron.d format: the user that runs it
    assert "etd-audit run --config /etc/etd-audit/etd-audit.toml" in fields[6]
    assert "config/example.toml" in (REPO / "crontab").read_text()  # the comment says where it comes from


def test_crontab_command_is_accepted_by_the_cli() -> None:
    command = crontab_line()[6]
    argv = shlex.split(command.split("exec ", 1)[1].split(">>", 1)[0])
    assert argv[0] == "etd-audit"
    args = parse_cli(argv[1:])
    assert (args.command, args.config) == ("run", Path("/etc/etd-audit/etd-audit.toml"))


# ---------------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_base_user_volume_and_copy_sources() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert froms and all(re.match(r"python:3\.11-slim\b", f) for f in froms), froms
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = " ".join(args for word, args in steps if word == "VOLUME")
    assert "/var/lib/etd-audit/reports" in volumes
    assert not any(word == "ENV" and re.search(r"SECRET|PASSWORD|WEBHOOK", args) for word, args in steps)
    copies = [args.split() for word, args in steps if word == "COPY"]
    assert copies
    for parts in copies:
        if any(p.startswith("--from=") for p in parts):
            continue
        sources = [p for p in parts if not p.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} does not exist"


def test_build_context_holds_what_the_package_build_needs_and_nothing_else() -> None:
    files = build_context_files()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = ["pyproject.toml", "audit/__init__.py", "audit/cli.py", "audit/schedule.py"]
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str) and (REPO / readme).exists():
        needed.append(readme)
    for data_glob in pyproject["tool"]["setuptools"]["package-data"]["audit"]:
        needed += [p.relative_to(REPO).as_posix() for p in (REPO / "audit").glob(data_glob)]
    missing = [n for n in needed if n not in files]
    assert not missing, f".dockerignore keeps out files the build needs: {missing}"
    stray = [f for f in files if f.startswith(("tests/", ".git/", "reports/", "deploy/")) or "__pycache__" in f]
    assert not stray, f"the build context carries files the image does not need: {stray[:5]}"


def test_default_command_is_the_schedule_subcommand() -> None:
    cmds = [exec_form(args) for word, args in instructions() if word == "CMD"]
    assert cmds, "no CMD"
    argv = cmds[-1]
    assert argv[0] == "etd-audit"
    args = parse_cli(argv[1:])
    assert args.command == "schedule"
    assert args.config == Path("/etc/etd-audit/etd-audit.toml")


def healthcheck_argv() -> list[str]:
    checks = [args for word, args in instructions() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options
    return exec_form(command.strip())


def test_healthcheck_reads_the_default_heartbeat_and_works(tmp_path: Path) -> None:
    argv = healthcheck_argv()
    assert argv[:3] == ["python", "-m", "audit.schedule"]
    path_at = argv.index("--check-heartbeat") + 1
    assert ScheduleConfig().heartbeat_file is None  # so the scheduler writes to default_heartbeat_file()
    image_env = dict(
        word.split("=", 1) for name, args in instructions() if name == "ENV" for word in args.split() if "=" in word
    )
    assert argv[path_at] == str(default_heartbeat_file({"XDG_STATE_HOME": image_env["XDG_STATE_HOME"]}))
    beat = tmp_path / "beat.json"
    argv = [sys.executable, *argv[1:path_at], str(beat), *argv[path_at + 1 :]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def check() -> int:
        return subprocess.run(argv, env=env, capture_output=True, timeout=BOUND).returncode

    assert check() == 1  # no heartbeat yet
    write_heartbeat(beat, last_run=None, last_exit=None, next_run=None)
    assert check() == 0
    write_heartbeat(beat, last_run=None, last_exit=0, next_run=None, now=datetime.now(UTC) - timedelta(hours=1))
    assert check() == 1


# ---------------------------------------------------------------------------------------------------
# Install into a fresh venv, then start the scheduler the way the image does


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the package installed from a copy of the Docker build context."""
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    for relative in build_context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=BOUND)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "--quiet", str(context)],
        capture_output=True,
        text=True,
        timeout=BOUND * 2,
    )
    assert done.returncode == 0, f"pip install of the build context failed:\n{done.stdout}\n{done.stderr}"
    # The dependencies are the ones already installed for the tests (appended after the venv's own
    # site-packages, so `audit` itself comes from the fresh install).
    purelib = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (purelib / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_package_installs_with_its_console_script_and_data(fresh_install: Path) -> None:
    assert (fresh_install / "bin" / "etd-audit").exists()
    probe = subprocess.run(
        [
            str(fresh_install / "bin" / "python"),
            "-c",
            "import audit, pathlib; p = pathlib.Path(audit.__file__).parent; "
            "print(p); print(sorted(x.name for x in (p / 'data').glob('*.csv')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=fresh_install,
    )
    location, data = probe.stdout.splitlines()
    assert Path(location).is_relative_to(fresh_install)  # the installed copy, not the work tree
    shipped = sorted(p.name for p in (REPO / "audit" / "data").glob("*.csv"))
    assert data == repr(shipped)


def test_installed_scheduler_starts_like_the_image_and_stops_on_sigterm(
    fresh_install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_parser()  # skips while the CLI is not there
    beat = tmp_path / "etd-audit.heartbeat"
    config = tmp_path / "etd-audit.toml"
    config.write_text(
        f"""
[[tenants]]
name = "contoso"
tenant_id = "11111111-1111-1111-1111-111111111111"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret_env = "ETD_TEST_CLIENT_SECRET"

[remediation_app]
app_id = "55555555-5555-5555-5555-555555555555"

[audit]
out_dir = "{tmp_path / "reports"}"

[schedule]
cron = "{example_cron()}"
heartbeat_file = "{beat}"
"""
    )
    monkeypatch.setenv("ETD_TEST_CLIENT_SECRET", "not-used-without-a-run")
    env = dict(os.environ)
    load_config(config)  # the test's own config must be valid for the run below to mean anything
    cmd = [exec_form(args) for word, args in instructions() if word == "CMD"][-1]
    argv = [str(fresh_install / "bin" / cmd[0]), *cmd[1:]]
    argv[argv.index("--config") + 1] = str(config)
    log = tmp_path / "schedule.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=sink, stderr=sink)
    try:
        wait_for(lambda: beat.exists() or proc.poll() is not None, "the heartbeat of the installed scheduler")
        assert proc.poll() is None, f"the scheduler exited early:\n{log.read_text()}"
        health = healthcheck_argv()
        health = [str(fresh_install / "bin" / "python"), *health[1:]]
        health[health.index("--check-heartbeat") + 1] = str(beat)
        assert subprocess.run(health, capture_output=True, timeout=BOUND, env=env).returncode == 0
        wait_for(lambda: "next audit run at" in log.read_text(), "the log line naming the next run")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert heartbeat_ok(beat, 600)
    assert json.loads(beat.read_text())["next_run"]


# ---------------------------------------------------------------------------------------------------
# Kubernetes


def folded_command(text: str) -> str:
    """The `- >-` folded shell command of the shard container (read without a YAML library)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- >-")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line.strip())
    return " ".join(part for part in body if part)


def test_cronjob_is_an_indexed_job_whose_pods_run_one_shard_each() -> None:
    text = CRONJOB.read_text()
    try:
        import yaml  # optional: only a text check without it
    except ImportError:
        yaml = None
    if yaml is not None:
        docs = [d for d in yaml.safe_load_all(text) if d]
        cron = next(d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == "etd-audit")
        job = cron["spec"]["jobTemplate"]["spec"]
        assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == 4
        assert cron["spec"]["schedule"] == example_cron()
    assert re.search(r"^\s+completionMode: Indexed$", text, re.M)
    completions = re.search(r"^\s+completions: (\d+)$", text, re.M)
    parallelism = re.search(r"^\s+parallelism: (\d+)$", text, re.M)
    assert completions and parallelism and completions.group(1) == parallelism.group(1)
    shards = int(completions.group(1))
    assert re.search(r'^\s+schedule: "' + re.escape(example_cron()) + '"$', text, re.M)
    assert "fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']" in text

    command = folded_command(text)
    assert f'--shard "${{JOB_COMPLETION_INDEX}}/{shards}"' in command
    for index in range(shards):
        # The script runs etd-audit, then maps its exit code (see the manifest); the command comes first.
        argv = shlex.split(command.replace("${JOB_COMPLETION_INDEX}", str(index)).split(";")[0])
        assert argv[0] == "etd-audit"
        args = parse_cli(argv[1:])
        assert args.command == "run"
        assert args.shard == (index, shards)
        assert args.config == Path("/etc/etd-audit/etd-audit.toml")
        assert args.out == Path(f"/var/lib/etd-audit/reports/shard-{index}")


def test_merge_job_reads_every_shard_folder() -> None:
    text = CRONJOB.read_text()
    shards = int(re.search(r"^\s+completions: (\d+)$", text, re.M).group(1))
    block = text[text.index("name: merge") :]
    argv = shlex.split(folded_command(block).split(";")[0])
    assert argv[0] == "etd-audit"
    args = parse_cli(argv[1:])
    assert args.command == "merge"
    assert [str(d) for d in args.dirs] == [f"/var/lib/etd-audit/reports/shard-{i}" for i in range(shards)]


def test_cluster_config_loads_and_writes_to_the_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "deploy" / "etd-audit.toml"
    for name in re.findall(r'_env = "([A-Z0-9_]+)"', path.read_text()):
        monkeypatch.setenv(name, "placeholder")
    config = load_config(path)
    assert config.audit.out_dir == Path("/var/lib/etd-audit/reports")
    text = CRONJOB.read_text()
    assert "mountPath: /var/lib/etd-audit/reports" in text
    assert "{name: config, mountPath: /etc/etd-audit, readOnly: true}" in text
    assert "secretRef:" in text and "claimName: etd-audit-reports" in text
