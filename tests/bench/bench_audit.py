"""Benchmark: etd-audit against the Graph simulator with Graph's limits on. Not part of the test run.

    python tests/bench/bench_audit.py                          # one tenant of 20,000 users
    python tests/bench/bench_audit.py --users 100000 --skip-probe-all
    python tests/bench/bench_audit.py --tenants 50 --users 2000  # many tenants, 2,000 users each

One invocation starts the simulator in a process of its own (Outlook: 4 calls in flight per app and
tenant, $batch items included; directory resource units; a global rate; a latency per request class)
and, on the same tenants, measures:
  - the floors: listing all users alone (plain requests, $select, $top=999) and the Outlook floor
    (probes x Outlook latency / 4);
  - etd-audit end to end (`etd-audit run`, in a subprocess so its peak RSS is its own) with --probe auto
    and with --probe all;
  - the baseline a competent admin would write first: msal + requests, list the users, then one
    mailboxSettings GET per user, one after the other (timed on a sample, extrapolated linearly).
Counts per request class and 429s are the simulator's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_LATENCY = "directory=0.5,outlook=0.15,reports=1.0,batch=0.02"
OUTLOOK_CONCURRENCY = 4
GIB = 1024**3


# --------------------------------------------------------------------------------------------- simulator
def serve_simulator(conn, tenants: int, users: int, seed: int, latency: dict[str, float], now: str) -> None:
    """The simulator's process: generate the tenants, serve them, answer "counters" and "stop"."""
    from audit.collect import should_probe, user_from_graph
    from audit.simulator import Limits, Simulator, generate_tenant

    moment = dt.datetime.fromisoformat(now)
    home = generate_tenant("contoso", users, seed, "home", now=moment)
    specs = [home]
    for i in range(1, tenants):
        specs.append(
            generate_tenant(
                f"tenant{i:02d}",
                users,
                seed,
                "healthy",
                now=moment,
                home_tenant_id=home["tenant_id"],
                remediation_audience="AzureADMultipleOrgs",
            )
        )
    limits = Limits(outlook_concurrency=OUTLOOK_CONCURRENCY, ru_per_10s=8000, global_rps=2000, latency=latency)
    sim = Simulator(specs, limits=limits).start()
    conn.send(
        {
            "url": sim.url,
            "ca_path": str(sim.ca_path),
            "config_toml": sim.config_toml("reports"),
            "secrets": sim.secrets_env(),
            "tenants": [
                {
                    "name": t["name"],
                    "tenant_id": t["tenant_id"],
                    "client_id": t["clients"][0]["client_id"],
                    "secret": t["clients"][0]["secret"],
                    "users": len(t["users"]),
                    "should_probe": sum(should_probe(user_from_graph(u)) for u in t["users"]),
                }
                for t in specs
            ],
        }
    )
    del specs, home
    while True:
        try:
            command = conn.recv()
        except EOFError:  # the benchmark ended without saying stop
            command = "stop"
        if command == "counters":
            snap = sim.counters.snapshot()
            snap.pop("batch_sizes", None)
            conn.send(snap)
        else:
            sim.stop()
            try:
                conn.send("stopped")
            except OSError:
                pass
            return


class SimProcess:
    def __init__(self, tenants: int, users: int, seed: int, latency: dict[str, float]):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0).isoformat()
        self.proc = ctx.Process(target=serve_simulator, args=(child, tenants, users, seed, latency, now), daemon=True)
        self.proc.start()
        self.info = self.conn.recv()

    def counters(self) -> dict:
        self.conn.send("counters")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.conn.recv()
        self.proc.join(10)


def diff(after: dict, before: dict) -> dict:
    classes = {k: after["by_class"].get(k, 0) - before["by_class"].get(k, 0) for k in after["by_class"]}
    routes = {k: after["by_route"].get(k, 0) - before["by_route"].get(k, 0) for k in after["by_route"]}
    return {
        "by_class": {k: v for k, v in sorted(classes.items()) if v},
        "by_route": {k: v for k, v in routes.items() if v},
        "http_requests": after["http_requests"] - before["http_requests"],
        "throttled": after["throttled"] - before["throttled"],
        "max_outlook_concurrency": after["max_outlook_concurrency"],
    }


# --------------------------------------------------------------------------------------------- clients
def msal_token(url: str, ca: str, tenant: dict) -> str:
    import msal

    session = requests.Session()  # verify on each request: REQUESTS_CA_BUNDLE would beat Session.verify
    session.request = functools.partial(session.request, verify=ca)  # type: ignore[method-assign]
    app = msal.ConfidentialClientApplication(
        tenant["client_id"],
        client_credential=tenant["secret"],
        authority=f"{url}/{tenant['tenant_id']}",
        http_client=session,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[f"{url}/.default"])
    return result["access_token"]


def get(session: requests.Session, url: str, token: str, ca: str) -> requests.Response:
    """One GET, waiting out 429s as Graph asks (the floor and the baseline are throttled like anyone)."""
    while True:
        response = session.get(url, headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=120)
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After") or 1))


def list_users(url: str, ca: str, tenant: dict, select: str) -> tuple[float, list[str]]:
    """Seconds to list every user (token excluded) and their ids."""
    token = msal_token(url, ca, tenant)
    session = requests.Session()
    ids: list[str] = []
    start = time.perf_counter()
    link: str | None = f"{url}/v1.0/users?$select={select}&$top=999"
    while link:
        page = get(session, link, token, ca).json()
        ids.extend(u["id"] for u in page["value"])
        link = page.get("@odata.nextLink")
    return time.perf_counter() - start, ids


def baseline(url: str, ca: str, tenant: dict, sample: int) -> dict:
    """msal + requests: list the users, then GET mailboxSettings for each, sequentially."""
    listing, ids = list_users(url, ca, tenant, "id,userPrincipalName")
    token = msal_token(url, ca, tenant)
    session = requests.Session()
    chosen = ids[: min(sample, len(ids))] if sample else ids
    start = time.perf_counter()
    for uid in chosen:
        get(session, f"{url}/v1.0/users/{uid}/mailboxSettings", token, ca)
    probing = time.perf_counter() - start
    per_user = probing / max(1, len(chosen))
    return {
        "listing": listing,
        "sampled": len(chosen),
        "users": len(ids),
        "per_user": per_user,
        "total": listing + per_user * len(ids),
        "extrapolated": len(chosen) < len(ids),
    }


# --------------------------------------------------------------------------------------------- the audit
def child_run(args: argparse.Namespace) -> int:
    """Inside the audit's subprocess: `etd-audit run`, timing the workbook writer on the side."""
    from audit import cli
    from audit.report import writer

    original = writer._write_xlsx
    spent = [0.0]

    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent[0] += time.perf_counter() - start

    writer._write_xlsx = timed
    start = time.perf_counter()
    code = cli.main(
        [
            "run",
            "--config",
            args.child_config,
            "--probe",
            args.child_probe,
            "--no-email",
            "--out",
            args.child_out,
            "--stem",
            "bench",
            "--format",
            "xlsx,json",
        ]
    )
    Path(args.child_result).write_text(
        json.dumps(
            {
                "exit": code,
                "in_process": time.perf_counter() - start,
                "workbook": spent[0],
                "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    return 0


def run_audit(sim: SimProcess, config: Path, probe: str, work: Path) -> dict:
    out = work / f"out-{probe}"
    result_file = work / f"result-{probe}.json"
    before = sim.counters()
    start = time.perf_counter()
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-config",
            str(config),
            "--child-probe",
            probe,
            "--child-out",
            str(out),
            "--child-result",
            str(result_file),
        ],
        cwd=ROOT,
        env={**os.environ, **sim.info["secrets"]},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if completed.returncode != 0 or not result_file.exists():
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"the audit with --probe {probe} failed")
    measured = json.loads(result_file.read_text())
    from audit.report import read_json_report

    run, _ = read_json_report(out / "bench.json")
    findings = {
        (f.tenant_id, f.check_id, f.user_id or f.user_principal_name or f.subject or "", str(f.severity))
        for t in run.tenants
        for f in t.findings
    }
    return {
        **measured,
        "wall": wall,
        "graph": diff(sim.counters(), before),
        "findings": findings,
        "probed": {t.tenant_id: t.mailboxes_probed for t in run.tenants},
        "statuses": sorted({str(t.status) for t in run.tenants}),
    }


# --------------------------------------------------------------------------------------------- output
def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def print_run(name: str, r: dict) -> None:
    g = r["graph"]
    print(
        f"  {name:<26} wall {r['wall']:8.1f} s (in process {r['in_process']:.1f} s)   workbook {r['workbook']:.1f} s"
        f"   peak RSS "
        f"{r['rss_kib'] / 1024:7.0f} MiB   exit {r['exit']}   tenants {','.join(r['statuses'])}"
    )
    print(
        f"  {'':<26} Graph: {g['http_requests']} HTTP requests; by class {g['by_class']}; 429s {g['throttled']}; "
        f"max Outlook in flight {g['max_outlook_concurrency']}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20000, help="users per tenant (default 20000)")
    p.add_argument("--tenants", type=int, default=1, help="tenants (e.g. 50 with --users 2000)")
    p.add_argument("--tenant-concurrency", type=int, default=4, help="audit.tenant_concurrency (default 4)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--latency", default=DEFAULT_LATENCY, help=f"seconds per request class ({DEFAULT_LATENCY})")
    p.add_argument(
        "--baseline-sample", type=int, default=400, help="mailboxes the baseline probes before extrapolating (0 = all)"
    )
    p.add_argument("--skip-probe-all", action="store_true", help="do not run --probe all (it takes long)")
    p.add_argument("--skip-baseline", action="store_true")
    for name in ("config", "probe", "out", "result"):
        p.add_argument(f"--child-{name}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_config:
        return child_run(args)

    latency = {k.strip(): float(v) for k, v in (part.split("=") for part in args.latency.split(",") if part)}
    outlook = latency.get("outlook", 0.0)
    many = args.tenants > 1
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    print(
        f"simulator limits: Outlook {OUTLOOK_CONCURRENCY} in flight per app+tenant, 8000 RU/10 s, 2000 req/s; "
        f"latency {latency}"
    )
    started = time.perf_counter()
    sim = SimProcess(args.tenants, args.users, args.seed, latency)
    url, ca = sim.info["url"], sim.info["ca_path"]
    tenants = sim.info["tenants"]
    print(f"tenants: {len(tenants)} x {args.users} users (generated in {time.perf_counter() - started:.0f} s)")
    work = Path(tempfile.mkdtemp(prefix="etd-bench-"))
    config = work / "config.toml"
    config.write_text(
        sim.info["config_toml"].replace('out_dir = "reports"', f'out_dir = "{work / "reports"}"')
        + f"tenant_concurrency = {args.tenant_concurrency}\n"
    )
    try:
        from audit.collect import USER_FIELDS

        listing = {}
        for t in tenants:
            listing[t["tenant_id"]], _ = list_users(url, ca, t, USER_FIELDS)
        floor_listing = sum(listing.values())
        print(
            f"\nfloor: listing all users alone: {floor_listing:.1f} s"
            + (f" (sum over {len(tenants)} tenants)" if many else "")
        )

        auto = run_audit(sim, config, "auto", work)
        probed_auto = sum(auto["probed"].values())
        print(f"\netd-audit run --probe auto: {probed_auto} mailboxes probed, the rest from the usage report")
        print_run("--probe auto", auto)

        full = None
        if not args.skip_probe_all:
            full = run_audit(sim, config, "all", work)
            print_run("--probe all", full)
        should = sum(t["should_probe"] for t in tenants)
        floor_outlook_all = should * outlook / OUTLOOK_CONCURRENCY
        floor_outlook_auto = probed_auto * outlook / OUTLOOK_CONCURRENCY
        print(
            f"\nOutlook floor: --probe all {should} probes x {outlook} s / {OUTLOOK_CONCURRENCY} = "
            f"{floor_outlook_all:.1f} s; --probe auto {probed_auto} probes: {floor_outlook_auto:.1f} s"
        )

        base = None
        if not args.skip_baseline and not many:
            base = baseline(url, ca, tenants[0], args.baseline_sample)
            how = (
                f"probed {base['sampled']} of {base['users']} sequentially ({base['per_user'] * 1000:.0f} ms "
                f"each), extrapolated linearly"
                if base["extrapolated"]
                else "every user probed"
            )
            print(
                f"\nbaseline (msal + requests, sequential): listing {base['listing']:.1f} s; {how}: "
                f"total {base['total']:.0f} s"
            )
    finally:
        sim.stop()

    rows = []
    if many:
        floors = []
        for t in tenants:
            probes = auto["probed"].get(t["tenant_id"], 0)
            floors.append(max(listing[t["tenant_id"]], probes * outlook / OUTLOOK_CONCURRENCY))
        bound = sum(floors) / args.tenant_concurrency
        value = auto["wall"] / bound
        rows.append(
            (
                f"{len(tenants)} tenants x {args.users} users: wall / (sum of per-tenant floors / "
                f"{args.tenant_concurrency})",
                f"{auto['wall']:.1f} / ({sum(floors):.1f} / {args.tenant_concurrency}) = {value:.2f}",
                "<= 1.5",
                mark(value <= 1.5),
            )
        )
        rows.append(
            (
                "  the same without the workbook write (diagnosis)",
                f"{auto['wall'] - auto['workbook']:.1f} / {bound:.1f} = "
                f"{(auto['wall'] - auto['workbook']) / bound:.2f}",
                "",
                "",
            )
        )
    else:
        value = auto["wall"] / floor_listing
        rows.append(
            (
                "etd-audit end to end / user-listing floor",
                f"{auto['wall']:.1f} / {floor_listing:.1f} = {value:.2f}",
                "<= 2.0",
                mark(value <= 2.0),
            )
        )
        rows.append(
            (
                "  the same without the workbook write (diagnosis)",
                f"{auto['wall'] - auto['workbook']:.1f} / {floor_listing:.1f} = "
                f"{(auto['wall'] - auto['workbook']) / floor_listing:.2f}",
                "",
                "",
            )
        )
        rows.append(
            (
                "  Graph's own floor for --probe auto / listing floor (diagnosis)",
                f"max({floor_listing:.1f}, {floor_outlook_auto:.1f}) / {floor_listing:.1f} = "
                f"{max(floor_listing, floor_outlook_auto) / floor_listing:.2f}",
                "",
                "",
            )
        )
        if full:
            value = full["wall"] / floor_outlook_all
            rows.append(
                (
                    "etd-audit --probe all / Outlook floor",
                    f"{full['wall']:.1f} / {floor_outlook_all:.1f} = {value:.2f}",
                    "<= 1.2",
                    mark(value <= 1.2),
                )
            )
        if base:
            value = base["total"] / auto["wall"]
            rows.append(
                (
                    f"baseline / etd-audit ({args.users} users)",
                    f"{base['total']:.0f} / {auto['wall']:.1f} = {value:.0f}",
                    ">= 20",
                    mark(value >= 20 if args.users >= 20000 else None),
                )
            )
    if full:
        same = auto["findings"] == full["findings"]
        detail = f"{len(auto['findings'])} vs {len(full['findings'])} findings"
        if not same:
            detail += (
                f"; only auto {len(auto['findings'] - full['findings'])}, only all "
                f"{len(full['findings'] - auto['findings'])}"
            )
        rows.append(("findings of --probe auto vs --probe all", detail, "identical", mark(same)))
    rss = auto["rss_kib"] * 1024
    total_users = args.users * args.tenants
    rows.append(
        (
            f"peak RSS of etd-audit ({total_users} users)",
            f"{rss / 2**20:.0f} MiB",
            "<= 1 GiB at 100k",
            mark(rss <= GIB if total_users >= 100000 else None),
        )
    )

    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
