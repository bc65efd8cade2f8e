"""The `etd-audit` command. The only module that parses arguments, prints, and picks the exit code."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from audit import __version__, logs
from audit.runner import ExitCode, RunOptions

log = logging.getLogger("audit")


def _shard(text: str) -> tuple[int, int]:
    """K/N with K counted from 0, as Kubernetes numbers the pods of an Indexed Job (JOB_COMPLETION_INDEX)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not K/N (e.g. 0/4)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}': N, the number of shards, must be at least 1")
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"'{text}': K counts from 0, so with N={n} it is one of 0..{n - 1}")
    return k, n


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = sorted(set(formats) - {"xlsx", "json", "csv"})
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown) or '(none)'}; use xlsx,json,csv")
    return formats


def _hours(text: str):
    from datetime import timedelta

    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of hours")
    return timedelta(hours=hours)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="folder for the report (default: audit.out_dir)")
    p.add_argument("--stem", help="file name stem (default: etd-audit-<UTC timestamp>)")
    p.add_argument("--format", type=_formats, help="outputs, e.g. xlsx,json,csv (default xlsx,json)")
    p.add_argument(
        "--probe",
        choices=("auto", "all", "none"),
        help="mailbox probes: auto = inventory report first, probe the rest; all; none",
    )
    p.add_argument(
        "--no-probe", dest="probe", action="store_const", const="none", help="same as --probe none: directory data only"
    )
    p.add_argument("--recipients", type=Path, help="CSV of addresses to check (column 'address')")
    p.add_argument("--no-email", action="store_true", help="do not mail the report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etd-audit",
        description="Find the accounts and tenant settings on which Graph-based mail remediation would fail.",
    )
    parser.add_argument("--version", action="version", version=f"etd-audit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (never shows secrets)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="audit the tenants of a config file and write the report")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--tenant", help="audit only this tenant (name or id)")
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="audit a stable 1/N of the tenants: shard K of N, K = 0..N-1 (a Job completion index)",
    )
    _run_options(p)

    p = sub.add_parser("demo", help="run the whole audit against the built-in Graph simulator")
    p.add_argument("--users", type=int, default=500, help="users in the main demo tenant (default 500)")
    p.add_argument("--seed", type=int, default=7)
    _run_options(p)

    p = sub.add_parser("sim", help="run the Graph simulator on its own and print a config for it")
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--faults", help="e.g. 429=0.1,retry_after=1-3,5xx=0.05,drop=0.02,token_ttl=60")
    p.add_argument("--limits", action="store_true", help="enforce Graph's throttling limits")
    p.add_argument("--rtt", type=float, help="with --limits: network round trip per HTTP request, seconds")
    p.add_argument("--latency", help="with --limits: service seconds per class, e.g. directory=0.5,outlook=0.15")
    p.add_argument(
        "--outlook-scope",
        choices=("app", "app-tenant", "app-mailbox"),
        help="with --limits: what Outlook's cap of 4 is counted per (default app)",
    )
    p.add_argument(
        "--outlook-batch",
        choices=("queue", "refuse"),
        help="with --limits: $batch Outlook items beyond 4 wait (queue, default) or get 429 (refuse)",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="out_dir written into the config")

    p = sub.add_parser("schedule", help="run the audit on the config's cron schedule until stopped")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--run-now", action="store_true", help="also run once at start")
    p.add_argument("--heartbeat", type=Path, help="heartbeat file (default: schedule.heartbeat_file)")

    p = sub.add_parser("readiness", help="can remediation work in this tenant today? (no report)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--tenant", help="check only this tenant (name or id)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("triage", help="explain a remediation error log, mailbox by mailbox")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("errorlog", type=Path)
    p.add_argument("--tenant", help="look mailboxes up only in this tenant")
    p.add_argument("--out", type=Path)
    p.add_argument("--format", type=_formats)

    p = sub.add_parser("merge", help="combine the reports of sharded runs (run --shard K/N) into one report")
    p.add_argument(
        "dirs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="the shards' report folders (the newest report in each is read), or their JSON files",
    )
    p.add_argument("--out", type=Path, help="folder for the merged report (default: audit.out_dir of --config)")
    p.add_argument(
        "--config",
        type=Path,
        help="the shards' config: exceptions, keep, formats, fail_on, email; configured tenants "
        "that no shard report holds count as failed",
    )
    p.add_argument("--stem", help="file name stem (default: etd-audit-<UTC timestamp>)")
    p.add_argument("--format", type=_formats, help="outputs, e.g. xlsx,json,csv (default xlsx,json)")
    p.add_argument(
        "--max-age",
        type=_hours,
        metavar="HOURS",
        help="refuse a shard report whose run started longer ago (a shard that did not run this time)",
    )
    p.add_argument("--no-email", action="store_true", help="do not mail the merged report")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose, args.log_format)
    from audit.auth import AuthError
    from audit.config import ConfigError
    from audit.csvin import InputError

    previous = _stop_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, InputError, AuthError) as err:
        print(f"etd-audit: {logs.redact(str(err))}", file=sys.stderr)
        return ExitCode.USAGE
    except Terminated:
        print("etd-audit: stopped by SIGTERM; no partial report was written", file=sys.stderr)
        # Tenant threads still reading Graph would hold the exit until their tenant is done; their
        # results are thrown away anyway, and the report writer has already removed its temp files.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("etd-audit: interrupted; no partial report was written", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, kill, systemd) as an exception, so writers unwind and discard temp files."""


def _raise_terminated(_signum, _frame) -> None:
    raise Terminated


def _stop_on_sigterm():
    """Python's default SIGTERM ends the process at once, mid-write; turn it into an exception instead.

    Returns the handler it replaced (None when it could not install one: not the main thread). The
    scheduler installs its own handlers over this one while it serves.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _options(args, **extra) -> RunOptions:
    return RunOptions(
        out_dir=args.out,
        stem=args.stem,
        formats=args.format,
        probe=args.probe,
        recipients_file=args.recipients,
        email=not args.no_email,
        **extra,
    )


def _print_outcome(outcome) -> None:
    files = outcome.report
    for tenant in outcome.result.tenants:
        counts: dict[str, int] = {}
        for f in tenant.findings:
            counts[str(f.severity)] = counts.get(str(f.severity), 0) + 1
        by_sev = ", ".join(f"{counts[s]} {s}" for s in ("critical", "high", "medium", "low") if s in counts)
        detail = f"{len(tenant.findings)} findings ({by_sev or 'none'})"
        if tenant.status == "failed" or tenant.error:
            detail = tenant.error if tenant.status == "failed" else f"{tenant.error}; {detail}"
        if tenant.status != "failed":  # users the audit could not judge, with the fix (e.g. a role to grant)
            detail += "".join(f"; {n} not assessed: {why}" for why, n in sorted(tenant.not_assessed.items()) if n)
        print(f"{tenant.name:<20} {tenant.status:<8} users {tenant.users_scanned:>7}  {detail}")
    for path in (files.xlsx, files.json, files.csv):
        if path:
            print(f"wrote {path}")
    if outcome.mail_error:
        print(f"mail not sent: {outcome.mail_error}", file=sys.stderr)


def cmd_run(args) -> int:
    from audit.config import load_config
    from audit.runner import run

    config = load_config(args.config)
    outcome = run(config, _options(args, tenant=args.tenant, shard=args.shard), progress=logs.Progress())
    _print_outcome(outcome)
    return outcome.exit_code


def cmd_demo(args) -> int:
    from audit.demo import demo_session
    from audit.runner import run

    with demo_session(users=args.users, seed=args.seed, out_dir=args.out or Path("reports")) as (config, rcpts):
        options = _options(args)
        if options.recipients_file is None:
            options = RunOptions(**{**options.__dict__, "recipients_file": rcpts})
        outcome = run(config, options, progress=logs.Progress())
    _print_outcome(outcome)
    return outcome.exit_code


def cmd_sim(args) -> int:
    import threading

    from audit.demo import simulator_for

    limits: object = args.limits
    tuned = {
        k: v
        for k, v in (("rtt", args.rtt), ("outlook_scope", args.outlook_scope), ("outlook_batch", args.outlook_batch))
        if v is not None
    }
    if args.latency or tuned:
        if not args.limits:
            print("etd-audit sim: --rtt, --latency, --outlook-scope and --outlook-batch need --limits", file=sys.stderr)
            return 2
        from audit.simulator import Limits, parse_latency

        try:
            limits = Limits(latency=parse_latency(args.latency or ""), **tuned)
        except ValueError as err:
            print(f"etd-audit sim: {err}", file=sys.stderr)
            return 2
    sim = simulator_for(users=args.users, seed=args.seed, faults=args.faults, limits=limits, port=args.port)
    with sim:
        print(f"# Graph simulator listening on {sim.url} (Ctrl-C to stop)")
        print("# Set these variables in the shell that runs etd-audit:")
        for name, value in sim.secrets_env().items():
            print(f"#   export {name}='{value}'")
        print(sim.config_toml(out_dir=str(args.out)))
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return ExitCode.OK


def cmd_schedule(args) -> int:
    from audit.config import load_config
    from audit.runner import run
    from audit.schedule import serve

    config = load_config(args.config)

    def job() -> int:
        try:
            fresh = load_config(args.config)  # pick up edits between runs
        except Exception as err:  # noqa: BLE001 - a broken edit must not kill the scheduler
            log.error("config no longer loads, run skipped: %s", err)
            return ExitCode.USAGE
        outcome = run(fresh, RunOptions(), progress=logs.Progress())
        _print_outcome(outcome)
        return outcome.exit_code

    return serve(config, job, run_now=args.run_now, heartbeat=args.heartbeat)


def cmd_readiness(args) -> int:
    from audit.config import load_config
    from audit.readiness import check_readiness, render

    config = load_config(args.config)
    report = check_readiness(config, tenant=args.tenant)
    print(render(report, as_json=args.json))
    return report.exit_code


def cmd_triage(args) -> int:
    from audit.config import load_config
    from audit.triage import triage

    config = load_config(args.config)
    result = triage(config, args.errorlog, tenant=args.tenant, out_dir=args.out, formats=args.format)
    for path in result.files:
        print(f"wrote {path}")
    return result.exit_code


def cmd_merge(args) -> int:
    from audit.merge import MergeError, merge

    try:
        outcome = merge(
            args.dirs,
            args.out,
            config_path=args.config,
            stem=args.stem,
            formats=args.format,
            max_age=args.max_age,
            email=not args.no_email,
        )
    except MergeError as err:
        print(f"etd-audit merge: {err}", file=sys.stderr)
        return ExitCode.USAGE
    for shard in outcome.inputs:
        print(
            f"read {shard.json} (run started {shard.result.started:%Y-%m-%d %H:%M} UTC, "
            f"{len(shard.result.tenants)} tenants)"
        )
    _print_outcome(outcome)
    return outcome.exit_code


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "sim": cmd_sim,
    "schedule": cmd_schedule,
    "readiness": cmd_readiness,
    "triage": cmd_triage,
    "merge": cmd_merge,
}

if __name__ == "__main__":
    raise SystemExit(main())
