"""The one way tests get an audit configuration for simulated tenants.

- `sim_config(placed, tmp_path, ...) -> Config`: the configuration, built from the config dataclasses, for
  tenants each served by a simulator (authority and Graph endpoint = that simulator, ca_bundle = its CA,
  or a bundle of every simulator's CA). The `make_config` fixture wraps it and puts the secrets in the
  environment for the test's duration.
- `secrets_env(placed) -> {variable: secret}`: the client secrets, under the one naming scheme
  (Simulator.secret_env_name: ETD_SIM_SECRET_<TENANT>), which the configuration names in client_secret_env.
- `config_toml(config, extra="") -> str` / `write_config_file(config, path, extra="")`: the same
  configuration as a TOML file, for tests that run the command line or a subprocess; `sim_toml(sim,
  out_dir)` is that text for every tenant a simulator serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

from audit.config import AuditConfig, Config, RemediationAppConfig, TenantConfig
from audit.simulator import DEMO_REMEDIATION_APP_ID, Simulator, demo_domains

Placed = Sequence[tuple[Simulator, dict]]
AUTO = "auto"  # home tenant: the one that holds the remediation app's registration


def served(sim: Simulator) -> list[tuple[Simulator, dict]]:
    """Every tenant of the simulator that has an audit client to sign in with."""
    return [(sim, spec) for spec in sim.tenants if spec.get("clients")]


def secrets_env(source: Simulator | Placed) -> dict[str, str]:
    placed = served(source) if isinstance(source, Simulator) else source
    return {Simulator.secret_env_name(spec["name"]): spec["clients"][0]["secret"] for _, spec in placed}


def sim_config(
    placed: Placed,
    tmp_path: Path,
    *,
    app_id: str = DEMO_REMEDIATION_APP_ID,
    home: str | None = AUTO,
    domains: Mapping[str, Sequence[str]] | None = None,
    policy: list[dict] | Path | None = None,
    **audit: object,
) -> Config:
    """domains: tenant name -> configured domains; None gives each tenant its mail domains (demo_domains),
    a mapping gives the tenants it does not name none. policy: Get-ApplicationAccessPolicy rows (written
    to access-policies.json) or an export file. audit: AuditConfig fields."""
    tenants = tuple(
        TenantConfig(
            name=spec["name"],
            tenant_id=spec["tenant_id"],
            client_id=spec["clients"][0]["client_id"],
            client_secret_env=Simulator.secret_env_name(spec["name"]),
            domains=tuple(demo_domains(spec) if domains is None else domains.get(spec["name"], ())),
            authority_host=sim.url,
            graph_endpoint=sim.url,
        )
        for sim, spec in placed
    )
    if home == AUTO:
        holder = next(
            (s for _, s in placed if any(a.get("appId") == app_id for a in s.get("applications", []))),
            None,
        )
        home = holder["tenant_id"] if holder else None
    if isinstance(policy, list):
        rows, policy = policy, tmp_path / "access-policies.json"
        policy.write_text(json.dumps(rows))
    sims = list({id(sim): sim for sim, _ in placed}.values())
    ca_bundle = sims[0].ca_path if len(sims) == 1 else tmp_path / "ca-bundle.pem"
    if len(sims) > 1:
        ca_bundle.write_text("".join(sim.ca_path.read_text() for sim in sims))
    return Config(
        path=tmp_path / "config.toml",
        tenants=tenants,
        remediation_app=RemediationAppConfig(app_id=app_id, home_tenant_id=home, access_policy_file=policy),
        audit=AuditConfig(**{"out_dir": tmp_path / "reports", "ca_bundle": ca_bundle, **audit}),
    )


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def config_toml(config: Config, extra: str = "") -> str:
    """The configuration as the TOML an administrator would write; `extra` is appended under [audit]."""
    lines: list[str] = []
    for tenant in config.tenants:
        lines += [
            "[[tenants]]",
            f"name = {_toml(tenant.name)}",
            f"tenant_id = {_toml(tenant.tenant_id)}",
            f"client_id = {_toml(tenant.client_id)}",
            f"client_secret_env = {_toml(tenant.client_secret_env)}",
            f"authority_host = {_toml(tenant.authority_host)}",
            f"graph_endpoint = {_toml(tenant.graph_endpoint)}",
            f"domains = {_toml(tenant.domains)}",
            "",
        ]
    lines.append("[remediation_app]")
    lines += _set_fields(config.remediation_app, RemediationAppConfig(app_id=""), always=("app_id",))
    lines += ["", "[audit]"]
    lines += _set_fields(config.audit, AuditConfig(), always=("out_dir", "ca_bundle"))
    return "\n".join(lines) + "\n" + (extra + "\n" if extra else "")


def _set_fields(section: object, defaults: object, always: tuple[str, ...]) -> list[str]:
    """`key = value` for the fields that differ from the defaults, and those always written."""
    lines = []
    for field in fields(section):  # type: ignore[arg-type]
        value = getattr(section, field.name)
        if field.name in always or (value is not None and value != getattr(defaults, field.name)):
            lines.append(f"{field.name} = {_toml(value)}")
    return lines


def sim_toml(sim: Simulator, out_dir: Path | str, **options: object) -> str:
    """config_toml of every tenant the simulator serves, reports going to out_dir."""
    out = Path(out_dir)
    return config_toml(sim_config(served(sim), out.parent, out_dir=out, **options))


def write_config_file(config: Config, path: Path | None = None, extra: str = "") -> Path:
    path = path or config.path
    path.write_text(config_toml(config, extra), encoding="utf-8")
    return path
