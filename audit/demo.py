"""The demo: the built-in Graph simulator with generated tenants, and a config that points at it.

The audit that runs against it is the real one: msal gets tokens over HTTPS from the simulator's
token endpoint, and the Graph client pages, batches and retries against its Graph endpoints.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.config import AuditConfig, Config, RemediationAppConfig, TenantConfig


def simulator_for(
    users: int = 500, seed: int = 7, faults: str | None = None, limits: bool | object = False, port: int = 0
):
    """`limits`: True for Graph's limits as documented, or a simulator Limits of one's own."""
    from audit.simulator import Limits, Simulator, demo_tenants

    chosen = limits if isinstance(limits, Limits) else (Limits() if limits else None)
    return Simulator(demo_tenants(users=users, seed=seed), faults=faults, limits=chosen, port=port)


def secret_env_name(tenant_name: str) -> str:
    return "ETD_DEMO_SECRET_" + "".join(c if c.isalnum() else "_" for c in tenant_name.upper())


def demo_config(sim, folder: Path, out_dir: Path) -> tuple[Config, Path]:
    """A Config for the simulator's tenants, plus a recipients list; files are written into folder."""
    from audit.simulator import DEMO_REMEDIATION_APP_ID, demo_domains, demo_recipients

    tenants = sim.tenants
    exports = write_exports(tenants, folder)
    recipients_file = folder / "recipients.csv"
    with recipients_file.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["address"])
        writer.writerows([a] for a in demo_recipients(tenants))
    configured = []
    for t in tenants:
        env = secret_env_name(t["name"])
        os.environ[env] = t["clients"][0]["secret"]
        configured.append(
            TenantConfig(
                name=t["name"],
                tenant_id=t["tenant_id"],
                client_id=t["clients"][0]["client_id"],
                client_secret_env=env,
                domains=tuple(demo_domains(t)),
                authority_host=sim.url,
                graph_endpoint=sim.url,
            )
        )
    home = next(t["tenant_id"] for t in tenants if t.get("scenario") == "home")
    config = Config(
        path=folder / "demo.toml",
        tenants=tuple(configured),
        remediation_app=RemediationAppConfig(app_id=DEMO_REMEDIATION_APP_ID, home_tenant_id=home, **exports),
        audit=AuditConfig(out_dir=out_dir, ca_bundle=Path(sim.ca_path)),
    )
    return config, recipients_file


def write_exports(tenants: list[dict], folder: Path) -> dict[str, Path]:
    """The Exchange Online PowerShell exports of the demo tenants, written the ways admins write them, by the
    [remediation_app] key that names each: the access policies as Windows PowerShell 5.1's
    `ConvertTo-Json > file` leaves them (UTF-16 with BOM), the management scopes by Export-Csv with its
    #TYPE line, the rest as UTF-8 JSON."""
    from audit.simulator import demo_access_policies, demo_rbac_exports

    files = {
        "access_policy_file": folder / "access-policies.json",
        "role_assignments_file": folder / "role-assignments.json",
        "management_scopes_file": folder / "management-scopes.csv",
        "exchange_service_principals_file": folder / "exchange-service-principals.json",
    }
    files["access_policy_file"].write_text(json.dumps(demo_access_policies(tenants), indent=2), encoding="utf-16")
    rbac = demo_rbac_exports(tenants)
    files["role_assignments_file"].write_text(json.dumps(rbac["role_assignments"], indent=2), encoding="utf-8")
    files["exchange_service_principals_file"].write_text(json.dumps(rbac["service_principals"]), encoding="utf-8")
    with files["management_scopes_file"].open("w", newline="", encoding="utf-8") as fh:
        fh.write("#TYPE Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ManagementScope\n")
        columns = ["Name", "RecipientRoot", "RecipientFilter", "ScopeRestrictionType", "Exclusive"]
        writer = csv.DictWriter(fh, columns, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rbac["management_scopes"])
    return files


@contextmanager
def demo_session(
    users: int = 500, seed: int = 7, out_dir: Path = Path("reports"), faults: str | None = None, limits: bool = False
) -> Iterator[tuple[Config, Path]]:
    """Start the simulator, yield a ready (config, recipients file), stop it afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="etd-audit-demo-") as tmp,
        simulator_for(users, seed, faults, limits) as sim,
    ):
        yield demo_config(sim, Path(tmp), out_dir)
