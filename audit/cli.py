"""The `etd-audit` command. The only module that parses arguments, prints, and picks the exit code."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import textwrap
import threading
from pathlib import Path

from audit import __version__, logs
from audit.console import Progress
from audit.exitcodes import ExitCode
from audit.runner import RunOptions

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
    from audit.report.formats import FORMATS

    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown) or '(none)'}; use {','.join(FORMATS)}")
    return formats


def _stem(text: str) -> str:
    from audit.report.writer import check_stem

    try:
        return check_stem(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _hours(text: str):
    from datetime import timedelta

    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of hours")
    return timedelta(hours=hours)


CONFIG_HELP = "the TOML configuration file (start from config/example.toml)"
EXIT_CODES = (
    "exit codes: 0 nothing at or above audit.fail_on; 1 findings at or above it (or not ready); "
    "2 usage, configuration or sign-in error; 3 partial: a tenant or some data could not be read; "
    "70 crash"
)


def _triage_epilog() -> str:
    from audit.csvin import ADDRESS_COLUMNS, ERROR_COLUMNS

    def names(columns: tuple[str, ...]) -> str:
        return textwrap.fill(", ".join(columns), width=96, initial_indent="      ", subsequent_indent="      ")

    return f"""\
the error log: a CSV export (UTF-8 or Windows code page, comma or semicolon, a header row) with
  - a mailbox column, found by its header (any case, spaces or underscores) among
{names(ADDRESS_COLUMNS)}
    failing that, the only column whose cells mostly hold e-mail addresses (the same rule as --recipients);
  - an error column, found by its header among
{names(ERROR_COLUMNS)}
    failing that, the only column whose cells mostly hold one of the four documented remediation errors.
  Other columns are kept and copied to the output.

outcome of each row:
  fix in the tenant   an audit check explains the error; its evidence and fix are given
  nothing to fix      explained by something that needs no change (message moved or deleted, a guest)
  no cause found      the tenant shows nothing today that explains the error (fixed since, or passing)
  unknown error       the error text is none of the four documented errors
  not assessed        the tenant or the mailbox could not be read
  no address          the row names no mailbox

exit codes: 0 no row needs a fix in the tenant; 1 at least one does; 2 the file or the configuration
cannot be used, or no tenant could be signed in to; 3 incomplete: a line, a tenant or a mailbox could
not be read (wins over 1)"""


def _global_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """-v and --log-format, before the command (defaults=True) and after it (no defaults: no override)."""
    unset = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (never shows secrets)", **unset)
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as plain text (default) or as one JSON object each",
        **({"default": "text"} if defaults else unset),
    )


def _run_options(p: argparse.ArgumentParser, *, demo: bool = False) -> None:
    p.add_argument("--out", type=Path, help="folder for the report (default: audit.out_dir)")
    p.add_argument("--stem", type=_stem, help="file name stem (default: etd-audit-<UTC timestamp>)")
    p.add_argument("--format", type=_formats, help="outputs, e.g. xlsx,json,csv (default xlsx,json)")
    p.add_argument(
        "--probe",
        choices=("auto", "all", "none"),
        help="mailbox probes: auto = inventory report first, probe the rest; all; none",
    )
    p.add_argument(
        "--no-probe", dest="probe", action="store_const", const="none", help="same as --probe none: directory data only"
    )
    if demo:  # the demo makes its own recipients list and mails nothing; --no-email is taken, not offered
        p.add_argument("--no-email", action="store_true", help=argparse.SUPPRESS)
        return
    p.add_argument(
        "--recipients",
        type=Path,
        help="CSV of addresses to check: a column named Address (or Mailbox, Email, UPN)",
    )
    p.add_argument("--no-email", action="store_true", help="do not mail the report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etd-audit",
        description="Find the accounts and tenant settings on which Graph-based mail remediation would fail.",
        epilog=textwrap.fill(EXIT_CODES, 96),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"etd-audit {__version__}")
    _global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None, epilog: str | None = None):  # noqa: A002
        # Raw text keeps the epilog's lists and columns; the description is wrapped here instead.
        return sub.add_parser(
            name,
            help=help,
            description=textwrap.fill(description or help[0].upper() + help[1:] + ".", 96),
            epilog=epilog,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command("run", "audit the tenants of a config file and write the report", epilog=textwrap.fill(EXIT_CODES, 96))
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--tenant", help="audit only this tenant (name or id)")
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="audit a stable 1/N of the tenants: shard K of N, K = 0..N-1 (a Job completion index)",
    )
    _run_options(p)

    p = command(
        "demo",
        "run the whole audit against the built-in Graph simulator",
        "Run the real audit against four generated tenants served by the built-in Graph simulator "
        "(over HTTPS on 127.0.0.1) and write the report. Nothing leaves this machine.",
    )
    p.add_argument("--users", type=int, default=500, help="users in the main demo tenant (default 500)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated tenants (default 7)")
    _run_options(p, demo=True)

    p = command(
        "sim",
        "run the Graph simulator on its own and print a config for it",
        "Serve the generated demo tenants over HTTPS on 127.0.0.1 until Ctrl-C, and print the variables "
        "to export and a configuration that points etd-audit at them.",
    )
    p.add_argument("--users", type=int, default=500, help="users in the main tenant (default 500)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated tenants (default 7)")
    p.add_argument("--faults", help="faults to inject, e.g. 429=0.1,retry_after=1-3,5xx=0.05,drop=0.02,token_ttl=60")
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

    p = command(
        "schedule",
        "run the audit on the config's cron schedule until stopped",
        "Run the audit at the times of [schedule] cron (in its timezone) until SIGTERM or Ctrl-C; the "
        "configuration is read again before each run, and a heartbeat file is touched while it waits.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--run-now", action="store_true", help="also run once at start")
    p.add_argument("--heartbeat", type=Path, help="heartbeat file (default: schedule.heartbeat_file)")

    p = command(
        "readiness",
        "can remediation work in this tenant today? (no report)",
        "Say per tenant whether remediation can work today: a short PASS / WARN / FAIL list with the reasons, "
        "from a quick read of the tenant; writes no report.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--tenant", help="check only this tenant (name or id)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command(
        "triage",
        "explain a remediation error log, mailbox by mailbox",
        "Look up each mailbox of a remediation error log in its tenant (only those mailboxes) and give "
        "the most likely cause and fix of every row; writes a workbook and JSON (etd-audit-triage-*).",
        epilog=_triage_epilog(),
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("errorlog", type=Path, help="the CSV the remediation console exported")
    p.add_argument("--tenant", help="look mailboxes up only in this tenant (name or id)")
    p.add_argument("--out", type=Path, help="folder for the triage files (default: audit.out_dir)")
    p.add_argument("--format", type=_formats, help="outputs, e.g. xlsx,json,csv (default xlsx,json)")

    p = command("merge", "combine the reports of sharded runs (run --shard K/N) into one report")
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
    p.add_argument("--stem", type=_stem, help="file name stem (default: etd-audit-<UTC timestamp>)")
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
    from audit.report.files import FolderBusy, ReportWriteError

    previous = _stop_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, InputError, AuthError) as err:
        logs.fatal(str(err), exit_code=ExitCode.USAGE)
        return ExitCode.USAGE
    except (FolderBusy, ReportWriteError) as err:
        print(f"etd-audit: {logs.redact(str(err))}", file=sys.stderr)
        return ExitCode.PARTIAL if getattr(err, "written", None) else ExitCode.USAGE
    except Terminated:
        logs.fatal("stopped by SIGTERM; no partial report was written", exit_code=ExitCode.TERMINATED)
        # Tenant threads still reading Graph would hold the exit until their tenant is done; their
        # results are thrown away anyway, and the report writer has already removed its temp files.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        from audit.report.files import hold_commits_for_exit

        hold_commits_for_exit()  # a report another thread is renaming into place lands whole first
        os._exit(ExitCode.TERMINATED)
    except KeyboardInterrupt:
        logs.fatal("interrupted; no partial report was written", exit_code=ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except Exception as err:  # noqa: BLE001 - a crash must not exit 1, which means "findings"
        logs.fatal(
            f"internal error, the command did not finish ({type(err).__name__}: {err}). "
            f"Exit code {int(ExitCode.CRASH)}; run again with --verbose for the traceback.",
            exit_code=ExitCode.CRASH,
        )
        log.debug("traceback of the internal error", exc_info=True)
        return ExitCode.CRASH
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
        recipients_file=getattr(args, "recipients", None),  # demo: none, it makes its own
        email=not getattr(args, "no_email", False),
        **extra,
    )


def _print_outcome(outcome) -> None:
    from audit.report.tally import counts_text, severity_counts

    files, judged = outcome.report, outcome.report.assessment
    for tenant in outcome.result.tenants:
        by_sev = counts_text(severity_counts(tenant.findings))
        detail = f"{len(tenant.findings)} findings ({by_sev or 'none'})"
        if tenant.status == "failed" or tenant.error:
            detail = tenant.error if tenant.status == "failed" else f"{tenant.error}; {detail}"
        if tenant.status != "failed":  # users the audit could not judge, with the fix (e.g. a role to grant)
            detail += "".join(f"; {n} not assessed: {why}" for why, n in sorted(tenant.not_assessed.items()) if n)
        print(f"{tenant.name:<20} {tenant.status:<8} users {tenant.users_scanned:>7}  {detail}")
    print(verdict_line(outcome.result, judged))
    for path in files.paths.values():
        print(f"wrote {path}")
    line = not_evaluated_line(judged)
    if line:
        print(line)
    if outcome.mail_error:
        print(f"mail not sent: {outcome.mail_error}", file=sys.stderr)


def verdict_line(result, assessment) -> str:
    """The run's answer in one line: 'NOT SAFE: 5 critical, 126 high, 30 medium in 3 tenants'."""
    from audit.report.tally import counts_text, severity_counts
    from audit.report.verdict import INCOMPLETE, SAFE

    judged = assessment.verdict
    found = counts_text(severity_counts(assessment.findings))
    n = len(result.tenants)
    where = f"in {n} tenant{'s' if n != 1 else ''}"
    if judged.word == SAFE:
        return f"{SAFE}: no findings {where}"
    if judged.word == INCOMPLETE:
        return f"{INCOMPLETE}: no findings {where}, but {len(judged.gaps)} item(s) could not be assessed"
    also = f"; {len(judged.gaps)} item(s) could not be assessed" if judged.gaps else ""
    return f"{judged.word}: {found} {where}{also}"


PERMISSION_IN_REASON = re.compile(r"permission ([A-Z][A-Za-z]+(?:\.[A-Za-z]+)+)")


def not_evaluated_line(assessment) -> str | None:
    """One line when checks were not evaluated: how many, where, and the permission that would fix it."""
    gaps = [g for g in assessment.verdict.gaps if g.what.startswith("check ")]
    if not gaps:
        return None
    tenants = ", ".join(dict.fromkeys(g.tenant for g in gaps))
    permissions = sorted({m for g in gaps for m in PERMISSION_IN_REASON.findall(g.reason)})
    other = [g for g in gaps if not PERMISSION_IN_REASON.search(g.reason)]
    fixes = []
    if permissions:
        fixes.append(f"grant the audit app {', '.join(permissions)} (application permission, admin consent)")
    if other:
        fixes.append(f"{len(other)} of them: {other[0].reason}" if permissions else other[0].reason)
    fix = "; ".join(fixes)
    return f"not evaluated: {len(gaps)} check{'s' if len(gaps) != 1 else ''} in {tenants}: {fix}"


def cmd_run(args) -> int:
    from audit.config import load_config
    from audit.runner import run

    config = load_config(args.config)
    with Progress() as progress:
        outcome = run(config, _options(args, tenant=args.tenant, shard=args.shard), progress=progress)
    _print_outcome(outcome)
    return outcome.exit_code


def cmd_demo(args) -> int:
    from audit.demo import demo_session
    from audit.runner import run

    with Progress() as progress:
        progress("generating the demo tenants", 0, None)
        with demo_session(users=args.users, seed=args.seed, out_dir=args.out or Path("reports")) as (config, rcpts):
            options = _options(args)
            if options.recipients_file is None:
                options = RunOptions(**{**options.__dict__, "recipients_file": rcpts})
            outcome = run(config, options, progress=progress)
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
        with Progress() as progress:
            outcome = run(fresh, RunOptions(), progress=progress)
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
    print_triage(result)
    return result.exit_code


TRIAGE_ROWS_SHOWN = 20


def print_triage(result) -> None:
    """A short table of the rows and their likely causes, a count per outcome, then the files written."""
    rows = result.rows
    shown = rows[:TRIAGE_ROWS_SHOWN]
    width = min(40, max([len("mailbox"), *(len(r.address or "-") for r in shown)]))
    outcome_width = max([len("outcome"), *(len(str(r.diagnosis.outcome)) for r in shown)])
    print(f"{'row':>4}  {'mailbox':<{width}}  {'outcome':<{outcome_width}}  likely cause")
    for r in shown:
        where = f" ({r.tenant})" if r.tenant else ""
        address = (r.address or "-")[:width]
        print(f"{r.row:>4}  {address:<{width}}  {r.diagnosis.outcome!s:<{outcome_width}}  {r.diagnosis.cause}{where}")
    if len(rows) > len(shown):
        print(f"      ... {len(rows) - len(shown)} more rows in the workbook")
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.diagnosis.outcome)] = counts.get(str(r.diagnosis.outcome), 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    unreadable = f"; {len(result.unreadable)} line(s) could not be read" if result.unreadable else ""
    print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {summary or 'none'}{unreadable}")
    for path in result.files:
        print(f"wrote {path}")


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
