"""Configuration: a TOML file, validated strictly. Every error names the file, the key and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A configuration problem the user must fix. str(e) is the whole message shown to them."""


@dataclass(frozen=True)
class TenantConfig:
    name: str
    tenant_id: str
    client_id: str
    client_secret_env: str | None = None  # name of the environment variable holding the secret
    certificate_path: Path | None = None  # PEM with the private key (and optionally the certificate)
    certificate_thumbprint: str | None = None  # SHA-1 hex of the certificate
    cloud: str = "global"
    domains: tuple[str, ...] = ()  # domains the remediation product is set up for in this tenant
    authority_host: str | None = None  # override of the cloud's login host (simulator, proxies)
    graph_endpoint: str | None = None  # override of the cloud's Graph root


@dataclass(frozen=True)
class RemediationAppConfig:
    app_id: str
    home_tenant_id: str | None = None
    access_policy_file: Path | None = None  # Get-ApplicationAccessPolicy export, JSON or CSV
    credential_warning_days: int = 30


@dataclass(frozen=True)
class AuditConfig:
    out_dir: Path = Path("reports")
    fail_on: str = "high"  # severity at or above which the exit code is 1
    keep: int = 12  # old reports retained in out_dir
    ca_bundle: Path | None = None
    proxy: str | None = None
    probe: str = "auto"  # auto (inventory first, probe the rest) | all | none
    formats: tuple[str, ...] = ("xlsx", "json")
    tenant_concurrency: int = 4
    exceptions_file: Path | None = None


@dataclass(frozen=True)
class EmailConfig:
    to: tuple[str, ...] = ()
    transport: str = "smtp"  # smtp | graph
    sender: str | None = None  # From address; for graph, the mailbox that sends
    sender_tenant: str | None = None  # for graph: name of the configured tenant that sends
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none
    smtp_username_env: str | None = None
    smtp_password_env: str | None = None
    only_on_change: bool = False
    webhook_url_env: str | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 6 * * 1"
    timezone: str = "UTC"
    misfire_grace_seconds: int = 3600
    heartbeat_file: Path = Path("/tmp/etd-audit.heartbeat")


@dataclass(frozen=True)
class Config:
    path: Path
    tenants: tuple[TenantConfig, ...]
    remediation_app: RemediationAppConfig
    audit: AuditConfig = field(default_factory=AuditConfig)
    email: EmailConfig | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming file, key and fix."""
    raise NotImplementedError
