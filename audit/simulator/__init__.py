"""A built-in Microsoft Graph and Entra ID simulator for tests and demos.

`Simulator(tenants, faults=..., limits=...)` serves over HTTPS on 127.0.0.1, for several tenants at
once (the access token's `tid` picks the tenant):

- the client-credentials side msal uses: `GET /{tenant}/v2.0/.well-known/openid-configuration` and
  `POST /{tenant}/oauth2/v2.0/token` (client secret or certificate assertion), `{tenant}` being the
  tenant id or one of its verified domains;
- Graph v1.0 under `/v1.0/`: users (with $select, $top, $filter, $count, paging), deleted users,
  organization, domains, subscribedSkus, service principals and their app role assignments and
  delegated grants, applications, groups and transitive members, mailboxSettings and mailFolders,
  sendMail and the draft + upload-session route, the mailbox usage report, and $batch.

A tenant is a JSON-able dict (see `generate_tenant`): Graph objects as Graph returns them, plus a
few simulator-only keys: on users `mailbox` (null, or {"purpose": "user|shared|room|equipment",
"location": "cloud|onprem"}); `clients` (the app registrations that may get tokens, with `secret`,
`certificate_pem`, `roles` and, for generated tenants, `private_key_pem` and `thumbprint`);
`appRoleAssignments` / `oauth2PermissionGrants` on service principals; `members` on groups;
`unverified_domains`; `usage_report` {"refresh_date", "concealed", "recipient_type" (the beta column)};
`exchange_online` (false: the tenant has no Exchange Online organisation); `administrative_units` (with
`members`); `rbac` (Exchange RBAC for Applications grants of the remediation app, which
`demo_rbac_exports` turns into PowerShell-shaped exports); `user_purpose_shape` ("object" serves
mailboxSettings.userPurpose as the older documented {"value": ...} instead of v1.0's plain member name).
"""

from .generate import (
    DEMO_HOME_TENANT_ID,
    DEMO_REMEDIATION_APP_ID,
    SCENARIOS,
    SCOPE_GROUP_NAME,
    demo_access_policies,
    demo_domains,
    demo_rbac_exports,
    demo_recipients,
    demo_tenants,
    generate_tenant,
    load_tenant,
)
from .limits import OUTLOOK_BATCHES, OUTLOOK_SCOPES, Counters, FaultSpec, Limits, parse_latency
from .server import Simulator

__all__ = [
    "DEMO_HOME_TENANT_ID",
    "DEMO_REMEDIATION_APP_ID",
    "SCENARIOS",
    "SCOPE_GROUP_NAME",
    "Counters",
    "FaultSpec",
    "Limits",
    "OUTLOOK_BATCHES",
    "OUTLOOK_SCOPES",
    "parse_latency",
    "Simulator",
    "demo_access_policies",
    "demo_domains",
    "demo_rbac_exports",
    "demo_recipients",
    "demo_tenants",
    "generate_tenant",
    "load_tenant",
]
