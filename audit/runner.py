"""One audit run: every selected tenant collected and checked, then the report written.

A tenant that fails is recorded as failed and does not stop the others. Only the CLI prints and
chooses how to exit; this module returns what happened.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audit import __version__, logs
from audit.auth import AuthError, TokenProvider
from audit.checks import run_checks
from audit.collect import collect_tenant
from audit.config import Config, ConfigError, TenantConfig
from audit.csvin import read_recipients
from audit.exitcodes import ExitCode
from audit.graph import GraphClient, GraphError, OutlookLimiter
from audit.models import Failure, RunResult, Severity, TenantResult, TenantStatus
from audit.session import check_context, connect

log = logging.getLogger("audit")


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path | None = None
    stem: str | None = None
    formats: tuple[str, ...] | None = None
    probe: str | None = None  # auto | all | none; None = from config
    recipients_file: Path | None = None
    tenant: str | None = None  # only this tenant (name or id)
    shard: tuple[int, int] | None = None  # (K, N): audit a stable 1/N of the tenants
    email: bool = True


@dataclass
class RunOutcome:
    result: RunResult
    report: object  # audit.report.ReportFiles: the files written and the assessment they render
    exit_code: int
    mail_error: str | None = None

    @property
    def assessment(self):  # audit.report.Assessment: what the exit code, the CLI and the delivery read
        return self.report.assessment


def shard_of(tenant: TenantConfig, shards: int) -> int:
    """A stable shard for a tenant: the same whatever the order or number of tenants in the file."""
    digest = hashlib.sha256(tenant.tenant_id.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def select_tenants(config: Config, options: RunOptions) -> list[TenantConfig]:
    tenants = list(config.tenants)
    if options.tenant:
        wanted = options.tenant.lower()
        tenants = [t for t in tenants if wanted in (t.name.lower(), t.tenant_id.lower())]
        if not tenants:
            names = ", ".join(t.name for t in config.tenants)
            raise ConfigError(f"{config.path}: no tenant named '{options.tenant}'. Configured: {names}.")
    if options.shard:
        k, n = options.shard
        tenants = [t for t in tenants if shard_of(t, n) == k]
    return tenants


def _in_tenant_context(audit_one: Callable[..., TenantResult]) -> Callable[..., TenantResult]:
    """Log records made while auditing one tenant carry its name (and start in the sign-in phase)."""

    @functools.wraps(audit_one)
    def audit(tenant: TenantConfig, *args, **kwargs) -> TenantResult:
        with logs.context(tenant=tenant.name, phase="sign-in"):
            return audit_one(tenant, *args, **kwargs)

    return audit


@_in_tenant_context
def audit_tenant(
    tenant: TenantConfig,
    config: Config,
    options: RunOptions,
    *,
    recipients: list[str] | None,
    progress: Callable | None = None,
    addresses: list[str] | None = None,
    connection: tuple[TokenProvider, GraphClient] | None = None,
    now: datetime | None = None,
    limiter: OutlookLimiter | None = None,
) -> TenantResult:
    """Collect and check one tenant. Never raises for Graph or auth trouble: the result says failed.

    addresses: read only the users owning these (a triage); connection: an existing sign-in to reuse.
    """
    audit = config.audit
    started = now or datetime.now(UTC)
    tenant_progress = (lambda phase, done, total: progress(phase, done, total, tenant.name)) if progress else None
    try:
        provider, client = connection or connect(tenant, audit)
        logs.adopt({"tenant": tenant.name, "phase": "collect"})
        snapshot = collect_tenant(
            client,
            tenant,
            config,
            probe=options.probe or audit.probe,
            recipients=recipients,
            audit_roles=provider.roles(),
            progress=tenant_progress,
            now=started,
            addresses=addresses,
            limiter=limiter,
        )
    except AuthError as err:
        log.error("%s: %s", tenant.name, err)
        return TenantResult(
            tenant.name,
            tenant.tenant_id,
            TenantStatus.FAILED,
            error=f"authentication: {err}",
            failure=Failure.AUTHENTICATION,
        )
    except GraphError as err:
        log.error("%s: the audit could not read the tenant: %s", tenant.name, err)
        return TenantResult(tenant.name, tenant.tenant_id, TenantStatus.FAILED, error=str(err), failure=Failure.GRAPH)

    ctx = check_context(tenant, config, started)
    logs.adopt({"tenant": tenant.name, "phase": "checks"})
    if tenant_progress:
        tenant_progress("checks", 0, None)
    findings, not_evaluated = run_checks(snapshot, ctx)
    probes = snapshot.probes.value or {}
    not_assessed: dict[str, int] = {}
    unassessed: list[str] = []
    for user_id, probe in probes.items():
        if probe.outcome in ("failed", "access_denied"):
            unassessed.append(user_id)
        if probe.outcome == "failed":
            key = "mailbox probe failed after retries"
        elif probe.outcome == "access_denied":
            key = "mailbox probe refused to the audit app (grant MailboxSettings.Read)"
        else:
            continue
        not_assessed[key] = not_assessed.get(key, 0) + 1
    problems = list(snapshot.problems)
    if not snapshot.users.ok:  # no user list (e.g. User.Read.All not granted): no mailbox was assessed
        problems.append(snapshot.users.error or "the user list could not be read")
    # Not every mailbox assessed also makes the tenant partial; the report lists those users on their own.
    status = TenantStatus.PARTIAL if problems or not_assessed else TenantStatus.OK
    return TenantResult(
        name=tenant.name,
        tenant_id=tenant.tenant_id,
        status=status,
        error="; ".join(problems) or None,
        users_scanned=len(snapshot.users.value or []),
        users_in_directory=snapshot.directory_user_count,
        mailboxes_probed=sum(1 for p in probes.values() if p.source == "probe"),
        not_assessed=not_assessed,
        not_evaluated=not_evaluated,
        findings=findings,
        snapshot=snapshot,
        not_assessed_users=tuple(sorted(unassessed)),
    )


def app_key(tenant: TenantConfig) -> tuple[str, str]:
    """The audit's app as Graph counts it: its client id, in its cloud (or endpoint override)."""
    return tenant.client_id.lower(), (tenant.graph_endpoint or tenant.cloud).lower()


def audit_tenants(
    config: Config,
    options: RunOptions,
    progress: Callable | None = None,
    finished: Callable[[int, TenantResult], None] | None = None,
) -> RunResult:
    """Audit the selected tenants, `audit.tenant_concurrency` at a time; results in the order of the config.

    finished(index, result) is called from the tenant's thread as each one is done (e.g. a UsersStream's add)."""
    tenants = select_tenants(config, options)
    recipients = read_recipients(options.recipients_file) if options.recipients_file else None
    started = datetime.now(UTC)
    workers = max(1, min(config.audit.tenant_concurrency, len(tenants)))
    # Outlook's cap is per app (throttling-limits): tenants audited with the same app share one limiter.
    limiters: dict[tuple[str, str], OutlookLimiter] = {}
    for t in tenants:
        limiters.setdefault(app_key(t), OutlookLimiter(config.audit.max_outlook_concurrency))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tenant")
    done: list[str] = []

    def one(index: int, tenant: TenantConfig) -> TenantResult:
        try:
            result = audit_tenant(
                tenant, config, options, recipients=recipients, progress=progress, limiter=limiters[app_key(tenant)]
            )
            if finished:
                finished(index, result)
            return result
        finally:
            if progress:
                progress("done", 0, None, tenant.name)
                done.append(tenant.name)
                if len(tenants) > 1:
                    progress("tenants", len(done), len(tenants))

    try:
        if progress and len(tenants) > 1:
            progress("tenants", 0, len(tenants))
        results = list(pool.map(one, range(len(tenants)), tenants))
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): start no queued tenant and do not wait for those in flight.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    probe = options.probe or config.audit.probe
    return RunResult(
        started=started, finished=datetime.now(UTC), version=__version__, probes=probe != "none", tenants=results
    )


def sign_in_failed(tenant: TenantResult) -> bool:
    """The tenant failed because its sign-in did (see audit_tenant): exit code 2, not 3."""
    return tenant.status == TenantStatus.FAILED and tenant.failure == Failure.AUTHENTICATION


def exit_code(result: RunResult, counted_findings, fail_on: str) -> ExitCode:
    statuses = [t.status for t in result.tenants]
    if statuses and all(sign_in_failed(t) for t in result.tenants):
        return ExitCode.USAGE
    if any(s != TenantStatus.OK for s in statuses):
        return ExitCode.PARTIAL
    threshold = Severity(fail_on).rank
    if any(Severity(f.severity).rank >= threshold for f in counted_findings):
        return ExitCode.FINDINGS
    return ExitCode.OK


def run(config: Config, options: RunOptions, progress: Callable | None = None) -> RunOutcome:
    """Audit, write the report (always first), then mail it. The report survives a failed send."""
    from audit.report import load_exceptions, write_reports
    from audit.report.files import check_writable
    from audit.report.formats import parse_formats
    from audit.report.stream import UsersStream

    out_dir = options.out_dir or config.audit.out_dir
    try:
        check_writable(Path(out_dir))
    except OSError as err:
        raise ConfigError(
            f"{config.path}: audit.out_dir: cannot write reports to {out_dir} ({err.strerror}). "
            "Point out_dir (or --out) at a folder this user can create and write to."
        ) from None
    audit = config.audit
    exceptions = load_exceptions(audit.exceptions_file) if audit.exceptions_file else ()
    formats = options.formats or audit.formats
    # The workbook's Users rows are written as each tenant finishes, while the others still wait on Graph.
    users = UsersStream(exceptions) if "xlsx" in parse_formats(formats) else None
    try:
        result = audit_tenants(config, options, progress, finished=users.add if users else None)
        if users:
            users.end()
        if progress:
            progress("writing the report", 0, None)
        with logs.context(phase="report"):
            log.info("writing the report (%s) to %s", ", ".join(formats), out_dir)
            files = write_reports(
                result,
                options.out_dir or audit.out_dir,
                stem=options.stem,
                formats=formats,
                keep=audit.keep,
                exceptions=exceptions,
                users=users,
            )
    finally:
        if users:
            users.discard()  # what it spooled, unless the workbook took it (failure, Ctrl-C, SIGTERM)
    code = exit_code(result, files.assessment.findings, audit.fail_on)
    outcome = RunOutcome(result, files, code)
    if options.email and delivery_configured(config):
        if progress:
            progress("mailing the report", 0, None)
        mail_report(outcome, config)
    log_finished(outcome)
    return outcome


def delivery_configured(config: Config) -> bool:
    from audit.delivery import configured

    return bool(configured(config))


def log_finished(outcome: RunOutcome) -> None:
    """The last record of a run or merge: verdict, finding counts, tenants, exit code and report paths.

    In JSON logs these are fields of the record (`event` = "run finished"), for collectors to alert on.
    """
    from audit.report.verdict import severity_counts

    judged = outcome.assessment.verdict
    counts = severity_counts(outcome.assessment.findings)
    tenants = Counter(str(t.status) for t in outcome.result.tenants)
    paths = [str(p) for p in outcome.report.paths.values()]
    fields = {
        "event": "run finished",
        "verdict": judged.word,
        "findings": counts,
        "tenants": dict(tenants),
        "exit_code": outcome.exit_code,
        "reports": paths,
        "mail_error": outcome.mail_error,
    }
    detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    log.info(
        "run finished: %s (%s), exit code %d; %s",
        judged.word,
        detail,
        outcome.exit_code,
        ", ".join(paths) or "no report written",
        extra={"fields": fields},
    )


def mail_report(outcome: RunOutcome, config: Config) -> None:
    """Deliver a written report on the channels the config names; a failed send is logged and makes the run partial."""
    if not delivery_configured(config):
        return
    from audit.delivery import MailError, send_report

    try:
        with logs.context(phase="mail"):
            send_report(outcome.result, outcome.report, config)
    except MailError as err:
        log.error("the report was written but could not be mailed: %s", err)
        outcome.mail_error = str(err)
        if outcome.exit_code != ExitCode.USAGE:
            outcome.exit_code = ExitCode.PARTIAL
