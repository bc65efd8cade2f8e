"""Sharding and merging: N shards run against the simulator, merged, equal one process over every tenant.

One simulator with six tenants serves the whole module; the single run and the three shards run once
(each takes well under a second) and the tests compare what they wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from audit.cli import build_parser, main
from audit.config import Config, RemediationAppConfig, TenantConfig, load_config
from audit.runner import RunOptions, select_tenants, shard_of
from audit.simulator import Simulator, generate_tenant
from tests.simconfig import secrets_env, sim_toml

N = 3
TENANTS = [
    ("fabrikam", "unconsented"),
    ("northwind", "disabled"),
    ("adatum", "healthy"),
    ("litware", "healthy"),
    ("tailspin", "healthy"),
]
DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "cronjob.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The simulator, its config (with one accepted exception), a single run and N shard runs."""
    root = tmp_path_factory.mktemp("shards")
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    home = generate_tenant("contoso", 40, 1, "home", now=now)
    common = {"now": now, "home_tenant_id": home["tenant_id"], "remediation_audience": "AzureADMyOrg"}
    specs = [home] + [
        generate_tenant(name, 30, i + 2, scenario, **common) for i, (name, scenario) in enumerate(TENANTS)
    ]
    exceptions = root / "exceptions.toml"
    accepted = (("app-single-tenant", "adatum"), ("on-premises-mailbox", "litware"))  # tenant-wide, one user
    exceptions.write_text(
        "".join(
            f'[[exception]]\ncheck_id = "{check}"\ntenant = "{tenant}"\nreason = "known"\nowner = "it@example.com"\n'
            "expires = 2999-12-31\n"
            for check, tenant in accepted
        )
    )
    with Simulator(specs) as sim, pytest.MonkeyPatch.context() as env:
        for name, value in secrets_env(sim).items():
            env.setenv(name, value)
        config = root / "etd-audit.toml"
        config.write_text(
            sim_toml(sim, str(root / "reports")) + f'exceptions_file = "{exceptions}"\n'
            'formats = ["xlsx", "json", "csv"]\n'
        )
        codes = {"single": main(["run", "--config", str(config), "--out", str(root / "single"), "--no-email"])}
        for k in range(N):
            codes[k] = main(
                ["run", "--config", str(config), "--shard", f"{k}/{N}", "--out", str(root / f"shard-{k}"), "--no-email"]
            )
        yield {
            "root": root,
            "config": config,
            "codes": codes,
            "sim": sim,
            "env": env,
            "tenants": load_config(config).tenants,
        }


def merge(runs, *dirs: str, out: str = "merged", extra: tuple[str, ...] = ()) -> int:
    root = runs["root"]
    return main(
        [
            "merge",
            *(str(root / d) for d in dirs),
            "--out",
            str(root / out),
            "--config",
            str(runs["config"]),
            "--no-email",
            *extra,
        ]
    )


def newest(folder: Path, suffix: str) -> Path:
    return max(folder.glob(f"etd-audit-*.{suffix}"), key=lambda p: (p.stat().st_mtime, p.name))


def report(folder: Path) -> dict:
    data = json.loads(newest(folder, "json").read_text())
    for f in data["findings"] + data["accepted"]:
        f.pop("first_seen")  # a time: the shard's or the merge's start
    return data


def sheets(folder: Path) -> dict[str, list[list]]:
    wb = load_workbook(newest(folder, "xlsx"), read_only=True)
    try:
        return {name: [list(row) for row in wb[name].iter_rows(values_only=True)] for name in wb.sheetnames}
    finally:
        wb.close()


def without(rows: list[list], header: str) -> list[list]:
    at = rows[0].index(header)
    return [row[:at] + row[at + 1 :] for row in rows]


def test_a_tenants_shard_is_fixed_by_its_id_alone_in_any_case_and_in_every_version():
    # A schedule that runs shard 0/3 must keep covering the same tenants after an upgrade: the shard is the
    # first 8 bytes of the SHA-256 of the lower-case tenant id, big-endian, modulo N. Pinned here by value.
    import hashlib

    ids = [
        "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
        "0a1b2c3d-0000-4000-8000-00000000abcd",
        "ffffffff-ffff-4fff-bfff-ffffffffffff",
    ]
    for tid in ids:
        expected = int(hashlib.sha256(tid.lower().encode()).hexdigest()[:16], 16)
        for n in (1, 2, 3, 7, 1000):
            tenant = TenantConfig("t", tid, "c")
            assert shard_of(tenant, n) == shard_of(TenantConfig("t", tid.lower(), "c"), n) == expected % n


def test_tenants_share_an_outlook_limiter_exactly_when_they_share_the_app_and_its_graph():
    from audit.runner import app_key

    app = "0d3c6e2a-0000-4000-8000-00000000ABCD"
    assert app_key(TenantConfig("a", "t1", app)) == (app.lower(), "global")
    assert app_key(TenantConfig("b", "t2", app.lower(), cloud="usgov")) == (app.lower(), "usgov")
    beside = TenantConfig("c", "t3", app, graph_endpoint="https://127.0.0.1:8443")
    assert app_key(beside) == (app.lower(), "https://127.0.0.1:8443")


def test_every_shard_holds_some_tenant(runs):
    shards = {shard_of(t, N) for t in runs["tenants"]}
    assert shards == set(range(N))  # else the comparison below would prove less than it seems
    assert all(code in (0, 1) for code in runs["codes"].values())


def test_merged_report_equals_a_single_run(runs, capsys):
    root = runs["root"]
    code = merge(runs, *(f"shard-{k}" for k in range(N)))
    assert code == runs["codes"]["single"] == 1  # the tenants hold high findings
    assert "read " in capsys.readouterr().out

    single, merged = report(root / "single"), report(root / "merged")
    assert merged["tenants"] == single["tenants"]  # order, statuses, counts, not_evaluated
    assert [t["status"] for t in merged["tenants"]] == ["ok"] * (1 + len(TENANTS))
    assert merged["findings"] == single["findings"] and len(single["findings"]) > 20
    assert merged["accepted"] == single["accepted"]
    assert sorted(f["exception"]["tenant"] for f in merged["accepted"]) == ["adatum", "litware"]
    assert {k: merged["run"][k] for k in ("version", "probes")} == {k: single["run"][k] for k in ("version", "probes")}

    one, many = sheets(root / "single"), sheets(root / "merged")
    assert without(many["Findings"], "First seen (UTC)") == without(one["Findings"], "First seen (UTC)")
    assert many["Users"] == one["Users"]
    assert len(one["Users"]) > 1 + 40 + 5 * 30 and any(row[-1] for row in one["Users"][1:])
    assert any("(accepted)" in (row[-1] or "") for row in many["Users"][1:])
    assert many["Tenant"] == one["Tenant"]
    assert without(many["Accepted"], "First seen (UTC)") == without(one["Accepted"], "First seen (UTC)")

    with (
        newest(root / "single", "csv").open(encoding="utf-8-sig") as a,
        newest(root / "merged", "csv").open(encoding="utf-8-sig") as b,
    ):
        assert without(list(csv.reader(b)), "First seen (UTC)") == without(list(csv.reader(a)), "First seen (UTC)")


def test_second_merge_is_compared_with_the_first(runs):
    root = runs["root"]
    assert merge(runs, *(f"shard-{k}" for k in range(N)), out="merged-twice") == 1
    first = json.loads(newest(root / "merged-twice", "json").read_text())
    assert merge(runs, *(f"shard-{k}" for k in range(N)), out="merged-twice") == 1
    second_path = newest(root / "merged-twice", "json")
    second = json.loads(second_path.read_text())
    assert [f["first_seen"] for f in second["findings"]] == [f["first_seen"] for f in first["findings"]]
    changes = sheets(root / "merged-twice")["Changes"]
    assert {row[0] for row in changes[1:]} == {"still open"}


def test_the_merge_judges_exceptions_itself(runs):
    """The shards applied the exceptions too; the merge decides again from its own config, once."""
    root = runs["root"]
    plain = root / "no-exceptions.toml"
    plain.write_text(runs["config"].read_text().replace("exceptions_file", "# exceptions_file"))
    assert (
        main(
            [
                "merge",
                *(str(root / f"shard-{k}") for k in range(N)),
                "--out",
                str(root / "merged-plain"),
                "--config",
                str(plain),
                "--no-email",
            ]
        )
        == 1
    )
    single, merged = report(root / "single"), report(root / "merged-plain")
    assert merged["accepted"] == [] and len(single["accepted"]) == 2
    key = lambda f: (f["tenant_id"], f["check_id"], f["user_id"] or "")  # noqa: E731
    assert sorted(map(key, merged["findings"])) == sorted(map(key, single["findings"] + single["accepted"]))


def test_a_failed_tenant_in_one_shard_is_failed_in_the_merge(runs, capsys):
    root, env = runs["root"], runs["env"]
    victim = next(t for t in runs["tenants"] if t.name != "contoso")
    k = shard_of(victim, N)
    env.setenv(victim.client_secret_env, "not-the-secret")
    try:
        main(
            ["run", "--config", str(runs["config"]), "--shard", f"{k}/{N}", "--out", str(root / "broken"), "--no-email"]
        )
    finally:
        env.setenv(victim.client_secret_env, secrets_env(runs["sim"])[victim.client_secret_env])
    others = [f"shard-{i}" for i in range(N) if i != k]
    capsys.readouterr()
    assert merge(runs, "broken", *others, out="merged-broken") == 3
    status = {t["name"]: (t["status"], t["error"]) for t in report(root / "merged-broken")["tenants"]}
    assert status[victim.name][0] == "failed" and "authentication" in status[victim.name][1]
    assert {s for name, (s, _) in status.items() if name != victim.name} == {"ok"}
    assert re.search(rf"^{victim.name}\s+failed", capsys.readouterr().out, re.M)


def test_a_missing_shard_makes_its_tenants_failed(runs):
    root = runs["root"]
    assert merge(runs, "shard-0", "shard-1", out="merged-missing") == 3
    status = {t["name"]: (t["status"], t["error"]) for t in report(root / "merged-missing")["tenants"]}
    lost = [t.name for t in runs["tenants"] if shard_of(t, N) == 2]
    assert lost and all(status[name][0] == "failed" and "not in any shard report" in status[name][1] for name in lost)
    assert len(status) == 1 + len(TENANTS)


def test_a_shard_without_workbook_is_merged_and_says_what_is_missing(runs):
    root = runs["root"]
    bare = root / "json-only"
    bare.mkdir()
    source = newest(root / "shard-1", "json")
    (bare / source.name).write_bytes(source.read_bytes())
    assert merge(runs, "shard-0", "json-only", "shard-2", out="merged-bare") == 1
    names = {t["name"] for t in json.loads(source.read_text())["tenants"]}
    single, merged = sheets(root / "single"), sheets(root / "merged-bare")
    assert [r for r in single["Users"] if r[0] not in names] == merged["Users"]
    assert report(root / "merged-bare")["findings"] == report(root / "single")["findings"]
    notes = " ".join(str(c) for row in merged["Summary"] for c in row if c)
    assert all(name in notes for name in names) and "their shard wrote no workbook" in notes
    tenant_rows = {row[0]: row for row in merged["Tenant"][1:]}
    assert all("settings not carried" in tenant_rows[name][3] for name in names)


def test_a_stale_shard_report_is_not_merged_as_this_run(runs):
    root = runs["root"]
    stale = root / "stale"
    stale.mkdir()
    data = json.loads(newest(root / "shard-1", "json").read_text())
    data["run"]["started"] = data["run"]["finished"] = "2020-01-06T06:00:00Z"
    (stale / "etd-audit-20200106T060000Z.json").write_text(json.dumps(data))
    assert merge(runs, "shard-0", "stale", "shard-2", out="merged-stale", extra=("--max-age", "12")) == 3
    status = {t["name"]: (t["status"], t["error"]) for t in report(root / "merged-stale")["tenants"]}
    for t in data["tenants"]:
        assert status[t["name"]][0] == "failed" and "older than --max-age" in status[t["name"]][1]


@pytest.mark.parametrize(
    "case, message",
    [
        ("twice", "is in both"),
        ("garbage", "not a readable JSON report"),
        ("schema", "unsupported report schema"),
        ("version", "written by etd-audit"),
        ("nowhere", "no such file or folder"),
        ("empty", "no etd-audit report"),
        ("into-input", "also an input"),
        ("workbook", "not a readable workbook"),
    ],
)
def test_inputs_that_do_not_fit_are_refused(runs, tmp_path, capsys, case, message):
    root = runs["root"]
    good = newest(root / "shard-0", "json")
    bad = tmp_path / "bad"
    bad.mkdir()
    data = json.loads(good.read_text())
    inputs, out = [root / "shard-0", bad], tmp_path / "out"
    if case == "twice":
        inputs = [root / "shard-0", good]
    elif case == "garbage":
        (bad / "etd-audit-x.json").write_text("{not json")
    elif case in ("schema", "version"):
        data["schema" if case == "schema" else "run"] = 2 if case == "schema" else {**data["run"], "version": "0.0.1"}
        (bad / "etd-audit-x.json").write_text(json.dumps(data))
        inputs = [root / "shard-1", bad]
    elif case == "nowhere":
        inputs = [tmp_path / "no-such-folder"]
    elif case == "into-input":
        inputs, out = [root / "shard-0"], root / "shard-0"
    elif case == "workbook":  # a sound JSON beside a damaged workbook
        (bad / good.name).write_bytes(good.read_bytes())
        (bad / good.with_suffix(".xlsx").name).write_bytes(b"PK not really a zip")
        inputs = [bad]
    code = main(["merge", *map(str, inputs), "--out", str(out), "--no-email"])
    assert code == 2
    assert message in capsys.readouterr().err
    if case != "into-input":
        assert not out.exists() or not list(out.iterdir())  # nothing written, not even a partial file


def test_merge_needs_somewhere_to_write(runs, capsys):
    assert main(["merge", str(runs["root"] / "shard-0"), "--no-email"]) == 2
    assert "--out" in capsys.readouterr().err


def test_tenant_is_chosen_by_name_or_id_in_any_case_and_a_wrong_one_lists_the_configured():
    from audit.config import ConfigError

    ids = ("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "0a1b2c3d-0000-4000-8000-00000000abcd")
    tenants = tuple(TenantConfig(name, tid, "c") for name, tid in zip(("Contoso", "fabrikam"), ids, strict=True))
    config = Config(path=Path("x.toml"), tenants=tenants, remediation_app=RemediationAppConfig(app_id="a"))
    for wanted in ("contoso", "CONTOSO", ids[0].lower(), ids[0]):
        assert [t.name for t in select_tenants(config, RunOptions(tenant=wanted))] == ["Contoso"]
    assert [t.name for t in select_tenants(config, RunOptions(tenant=ids[1].upper()))] == ["fabrikam"]
    with pytest.raises(ConfigError) as refused:
        select_tenants(config, RunOptions(tenant="northwind"))
    assert str(refused.value) == "x.toml: no tenant named 'northwind'. Configured: Contoso, fabrikam."


@pytest.mark.parametrize("n", range(1, 6))
def test_every_tenant_is_in_exactly_one_shard(n):
    tenants = tuple(
        TenantConfig(
            name=f"t{i}", tenant_id=f"{i:08x}-1111-4111-8111-{i * 7919:012x}", client_id="c", client_secret_env="S"
        )
        for i in range(40)
    )
    config = Config(path=Path("x.toml"), tenants=tenants, remediation_app=RemediationAppConfig(app_id="a"))
    shards = [select_tenants(config, RunOptions(shard=(k, n))) for k in range(n)]
    names = [t.name for shard in shards for t in shard]
    assert sorted(names) == sorted(t.name for t in tenants)  # all of them, none twice
    if n > 1:
        assert all(shards)  # 40 tenants spread over at most 5 shards leave none empty
    # The shard is a property of the tenant, not of its place in the file.
    backwards = Config(path=Path("x.toml"), tenants=tenants[::-1], remediation_app=config.remediation_app)
    assert [{t.name for t in select_tenants(backwards, RunOptions(shard=(k, n)))} for k in range(n)] == [
        {t.name for t in shard} for shard in shards
    ]


@pytest.mark.parametrize(
    "value, message",
    [
        ("3/3", "K counts from 0"),
        ("-1/3", "K counts from 0"),
        ("0/0", "at least 1"),
        ("1", "is not K/N"),
        ("a/3", "is not K/N"),
        ("/3", "is not K/N"),
    ],
)
def test_bad_shard_is_a_usage_error(value, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "--config", "etd-audit.toml", f"--shard={value}"])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def pod_scripts() -> tuple[int, str, str]:
    """N and the `sh -c` scripts of the shard and merge pods in deploy/cronjob.yaml (read as text: no YAML library)."""
    text = DEPLOY.read_text()
    shard_doc, merge_doc = (d for d in text.split("\n---\n") if "kind: CronJob" in d)
    assert re.search(r"^ +completionMode: Indexed$", shard_doc, re.M)
    n = int(re.search(r"^ +completions: (\d+)$", shard_doc, re.M).group(1))
    assert int(re.search(r"^ +parallelism: (\d+)$", shard_doc, re.M).group(1)) == n > 1

    def folded(doc: str) -> str:  # the `- >-` item under command: its lines joined by spaces
        lines = doc[doc.index("- >-\n") :].splitlines()[1:]
        indent = len(lines[0]) - len(lines[0].lstrip())
        return " ".join(line.strip() for line in takewhile(lambda x: x[:indent].isspace(), lines))

    return n, folded(shard_doc), folded(merge_doc)


def test_cronjob_pods_run_real_commands():
    n, shard_script, merge_script = pod_scripts()
    shard_dirs = []
    for k in range(n):
        argv = shlex.split(shard_script.replace("${JOB_COMPLETION_INDEX}", str(k)).split(";")[0])
        args = build_parser().parse_args(argv[1:])
        assert argv[0] == "etd-audit" and args.command == "run" and args.shard == (k, n) and args.no_email
        shard_dirs.append(args.out)
    assert len(set(shard_dirs)) == n  # each shard keeps its own folder, and its own history there
    argv = shlex.split(merge_script.split(";")[0])
    args = build_parser().parse_args(argv[1:])
    assert argv[0] == "etd-audit" and args.command == "merge"
    assert list(args.dirs) == shard_dirs and args.max_age is not None and args.out not in shard_dirs


@pytest.mark.parametrize("code, pod", [(0, 0), (1, 0), (2, 2), (3, 0)])
def test_cronjob_pods_fail_only_when_no_report_could_be_written(tmp_path, code, pod):
    """The pods' shell turns 1 (findings) and 3 (a tenant failed) into success: the report exists, and a
    retry would audit (and mail) again. Run with a stand-in etd-audit that checks its arguments with the
    real parser and exits with the code under test."""
    n, shard_script, merge_script = pod_scripts()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "etd-audit"
    stand_in.write_text(
        f"#!{sys.executable}\nimport os, sys\nfrom audit.cli import build_parser\n"
        "args = build_parser().parse_args(sys.argv[1:])\n"
        "print(args.command, getattr(args, 'shard', None))\n"
        "sys.exit(int(os.environ['EXIT_AS']))\n"
    )
    stand_in.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "EXIT_AS": str(code),
        "JOB_COMPLETION_INDEX": str(n - 1),
    }
    for script, said in ((shard_script, f"run ({n - 1}, {n})"), (merge_script, "merge None")):
        done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
        assert (done.returncode, done.stdout.splitlines()[0]) == (pod, said), done.stderr
