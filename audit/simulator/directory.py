"""Directory endpoints: users, deleted users, organization, domains, SKUs, apps, groups."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from .catalog import SERVICE_OF_PLAN
from .limits import FaultSpec
from .odata import (
    GraphFail,
    Request,
    Response,
    decode_skiptoken,
    encode_skiptoken,
    parse_filter,
    parse_select,
    parse_top,
    project,
    public,
)
from .state import (
    GROUP_HIDDEN,
    PROPERTIES,
    SP_HIDDEN,
    USER_DEFAULT,
    USER_SELECTABLE,
    USER_SINGLE_ONLY,
    TenantState,
)

_USER_FILTER = {"id": "id", "userprincipalname": "userPrincipalName", "mail": "mail"}


def not_found(key: str) -> GraphFail:
    return GraphFail(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def _known(items: list[dict], hidden: frozenset[str], entity: str) -> dict[str, str]:
    """Selectable properties: Graph's for the entity, plus any other key the tenant spec gives."""
    names = {k for item in items for k in item if k not in hidden} | set(PROPERTIES[entity])
    return {n.lower(): n for n in names}


class DirectoryHandlers:
    url: str  # the simulator's base URL, set by the owner
    faults: FaultSpec  # set by the owner too

    # ------------------------------------------------------------------------------------- paging
    def collection(
        self,
        req: Request,
        *,
        kind: str,
        context: str,
        items: Callable[[str | None], list[dict]],
        known: dict[str, str],
        entity: str,
        default: Callable[[dict], dict],
        max_top: int = 999,
    ) -> Response:
        """One page of a collection with $select/$top/$filter/$count and an opaque $skiptoken."""
        for option in ("$search", "$orderby", "$expand", "$skip", "$apply"):
            if option in req.query:
                raise GraphFail(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{option}' is not supported by this simulator.",
                )
        token = req.query.get("$skiptoken")
        if token:
            state = decode_skiptoken(token)
            if state.get("k") != kind:
                raise GraphFail(400, "Request_BadRequest", "Invalid skip token.")
            select, top, raw_filter, offset = state.get("s"), int(state["t"]), state.get("f"), int(state["o"])
        else:
            select = parse_select(req, known, entity)
            top = parse_top(req, maximum=max_top)
            raw_filter, offset = req.query.get("$filter"), 0
        matched = items(raw_filter)
        chunk = matched[offset : offset + top]
        body: dict = {
            "@odata.context": f"{self.url}/v1.0/$metadata#{context}" + (f"({','.join(select)})" if select else "")
        }
        if offset == 0 and req.query.get("$count", "").lower() == "true" and self._eventual(req):
            body["@odata.count"] = len(matched)
        if offset + top < len(matched):
            next_state = {"k": kind, "s": select, "t": top, "f": raw_filter, "o": offset + top}
            body["@odata.nextLink"] = (
                f"{self.faults.next_link_base or self.url}/v1.0{quote(req.path)}"
                f"?$top={top}&$skiptoken={encode_skiptoken(next_state)}"
            )
        body["value"] = [project(x, select) if select else default(x) for x in chunk]
        return Response.json(200, body)

    @staticmethod
    def _eventual(req: Request) -> bool:
        return (req.header("consistencylevel") or "").lower() == "eventual"

    # ------------------------------------------------------------------------------------- users
    def _user_select_guard(self, req: Request) -> None:
        selected = {p.strip().lower() for p in (req.query.get("$select") or "").split(",")}
        if selected & {p.lower() for p in USER_SINGLE_ONLY}:
            raise GraphFail(501, "NotImplemented", "This operation target is not yet supported.")

    def filter_users(self, tenant: TenantState, raw: str | None) -> list[dict]:
        if not raw:
            return tenant.users
        clauses = parse_filter(raw, _USER_FILTER, "User", frozenset({"proxyaddresses"}))
        positions: set[int] = set()
        for clause in clauses:
            for value in (v.lower() for v in clause.values):
                if clause.lambda_any:
                    positions.update(tenant.by_proxy.get(value, ()))
                elif clause.prop == "id":
                    if value in tenant.by_key and tenant.by_key[value]["id"].lower() == value:
                        positions.add(tenant.position[tenant.by_key[value]["id"]])
                elif clause.prop == "userPrincipalName":
                    positions.update(tenant.by_upn.get(value, ()))
                else:
                    positions.update(tenant.by_mail.get(value, ()))
        return [tenant.users[i] for i in sorted(positions)]

    @staticmethod
    def _match_deleted(tenant: TenantState, raw: str | None) -> list[dict]:
        if not raw:
            return tenant.deleted
        clauses = parse_filter(raw, _USER_FILTER, "User", frozenset({"proxyaddresses"}))

        def hit(user: dict) -> bool:
            for clause in clauses:
                values = {v.lower() for v in clause.values}
                if clause.lambda_any:
                    if values & {p.lower() for p in user.get("proxyAddresses") or []}:
                        return True
                elif (user.get(clause.prop) or "").lower() in values:
                    return True
            return False

        return [u for u in tenant.deleted if hit(u)]

    def users_list(self, req: Request, params: dict) -> Response:
        self._user_select_guard(req)
        tenant = req.tenant
        return self.collection(
            req,
            kind="users",
            context="users",
            items=lambda f: self.filter_users(tenant, f),
            known=USER_SELECTABLE,
            entity="user",
            default=lambda u: project(u, USER_DEFAULT),
        )

    def users_count(self, req: Request, params: dict) -> Response:
        if not self._eventual(req):
            raise GraphFail(400, "Request_BadRequest", "$count is not currently supported.")
        return Response.text(200, str(len(self.filter_users(req.tenant, req.query.get("$filter")))))

    def user_get(self, req: Request, params: dict) -> Response:
        key = params["user"]
        user = req.tenant.user(key)
        if user is None:
            raise not_found(key)
        select = parse_select(req, USER_SELECTABLE, "user")
        context = f"{self.url}/v1.0/$metadata#users" + (f"({','.join(select)})" if select else "") + "/$entity"
        if select:
            body = project(user, [s for s in select if s not in USER_SINGLE_ONLY])
        else:
            body = project(user, USER_DEFAULT)
        return Response.json(200, {"@odata.context": context, **body})

    def deleted_users(self, req: Request, params: dict) -> Response:
        tenant = req.tenant
        return self.collection(
            req,
            kind="deleted",
            context="directory/deletedItems/microsoft.graph.user",
            items=lambda f: self._match_deleted(tenant, f),
            known=USER_SELECTABLE,
            entity="user",
            default=lambda u: project(u, (*USER_DEFAULT, "deletedDateTime")),
        )

    def deleted_uncast(self, req: Request, params: dict) -> Response:
        raise GraphFail(
            400,
            "Request_BadRequest",
            "The type of the deleted items must be given: use /directory/deletedItems/microsoft.graph.user.",
        )

    # ------------------------------------------------------------------------------------- tenant
    def organization(self, req: Request, params: dict) -> Response:
        tenant: TenantState = req.tenant
        spec = tenant.spec
        plans, provisioned = [], []
        for sku in spec.get("subscribed_skus", []):
            for plan in sku.get("servicePlans", []):
                plans.append(
                    {
                        "assignedDateTime": spec.get("created", "2020-01-01T00:00:00Z"),
                        "capabilityStatus": "Enabled",
                        "service": plan.get("serviceName") or _service_of(plan["servicePlanName"]),
                        "servicePlanId": plan["servicePlanId"],
                    }
                )
        for plan in plans:
            entry = {
                "capabilityStatus": "Enabled",
                "provisioningStatus": "Success",
                "service": plan["service"],
            }
            if entry not in provisioned:
                provisioned.append(entry)
        org = {
            "id": tenant.id,
            "displayName": spec.get("display_name", tenant.name),
            "tenantType": "AAD",
            "countryLetterCode": "US",
            "createdDateTime": spec.get("created"),
            "onPremisesSyncEnabled": True if any(u.get("onPremisesSyncEnabled") for u in tenant.users) else None,
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": d["isDefault"],
                    "isInitial": d["isInitial"],
                    "name": d["id"],
                    "type": "Managed",
                }
                for d in tenant.domains()
                if d["isVerified"]
            ],
            "assignedPlans": plans,
            "provisionedPlans": provisioned,
        }
        return self.collection(
            req,
            kind="org",
            context="organization",
            items=lambda f: self._no_filter(f, [org]),
            known=_known([org], frozenset(), "organization"),
            entity="organization",
            default=dict,
        )

    def domains(self, req: Request, params: dict) -> Response:
        rows = req.tenant.domains()
        return self.collection(
            req,
            kind="domains",
            context="domains",
            items=lambda f: self._no_filter(f, rows),
            known=_known(rows, frozenset(), "domain"),
            entity="domain",
            default=dict,
        )

    def subscribed_skus(self, req: Request, params: dict) -> Response:
        rows = req.tenant.spec.get("subscribed_skus", [])
        return self.collection(
            req,
            kind="skus",
            context="subscribedSkus",
            items=lambda f: self._no_filter(f, rows),
            known=_known(rows, frozenset(), "subscribedSku"),
            entity="subscribedSku",
            default=dict,
        )

    @staticmethod
    def _no_filter(raw: str | None, rows: list[dict]) -> list[dict]:
        if raw:
            raise GraphFail(400, "Request_UnsupportedQuery", "Unsupported Query.")
        return rows

    # ------------------------------------------------------------------------------------- apps
    def _filtered(self, rows: list[dict], raw: str | None, allowed: dict[str, str], entity: str) -> list[dict]:
        if not raw:
            return rows
        clauses = parse_filter(raw, allowed, entity)
        return [
            r
            for r in rows
            if any((str(r.get(cl.prop) or "")).lower() in {v.lower() for v in cl.values} for cl in clauses)
        ]

    def service_principals(self, req: Request, params: dict) -> Response:
        rows = req.tenant.service_principals
        allowed = {"appid": "appId", "displayname": "displayName", "id": "id"}
        return self.collection(
            req,
            kind="sps",
            context="servicePrincipals",
            items=lambda f: self._filtered(rows, f, allowed, "ServicePrincipal"),
            known=_known(rows, SP_HIDDEN, "servicePrincipal"),
            entity="servicePrincipal",
            default=lambda sp: public(sp, SP_HIDDEN),
        )

    def _sp(self, req: Request, params: dict) -> dict:
        tenant: TenantState = req.tenant
        if params.get("app") is not None:
            sp = tenant.service_principal(app_id=params["app"])
            key = params["app"]
        else:
            sp = tenant.service_principal(object_id=params["sp"])
            key = params["sp"]
        if sp is None:
            raise not_found(key)
        return sp

    def service_principal(self, req: Request, params: dict) -> Response:
        sp = self._sp(req, params)
        known = _known([sp], SP_HIDDEN, "servicePrincipal")
        select = parse_select(req, known, "servicePrincipal")
        body = project(sp, select) if select else public(sp, SP_HIDDEN)
        return Response.json(200, {"@odata.context": f"{self.url}/v1.0/$metadata#servicePrincipals/$entity", **body})

    def sp_links(self, req: Request, params: dict) -> Response:
        sp = self._sp(req, params)
        link = params["link"]
        canonical = "appRoleAssignments" if link.lower() == "approleassignments" else "oauth2PermissionGrants"
        rows = sp.get(canonical, [])
        entity = "appRoleAssignment" if canonical == "appRoleAssignments" else "oAuth2PermissionGrant"
        return self.collection(
            req,
            kind=f"{canonical}:{sp['id']}",
            context=canonical,
            items=lambda f: self._no_filter(f, rows),
            known=_known(rows, frozenset(), entity),
            entity=entity,
            default=dict,
        )

    def applications(self, req: Request, params: dict) -> Response:
        rows = req.tenant.applications
        allowed = {"appid": "appId", "displayname": "displayName", "id": "id"}
        return self.collection(
            req,
            kind="apps",
            context="applications",
            items=lambda f: self._filtered(rows, f, allowed, "Application"),
            known=_known(rows, frozenset(), "application"),
            entity="application",
            default=dict,
        )

    def application(self, req: Request, params: dict) -> Response:
        tenant: TenantState = req.tenant
        key = params.get("app") or params.get("id") or ""
        app = tenant.application(app_id=key) if params.get("app") is not None else tenant.application(object_id=key)
        if app is None:
            raise not_found(key)
        select = parse_select(req, _known([app], frozenset(), "application"), "application")
        body = project(app, select) if select else dict(app)
        return Response.json(200, {"@odata.context": f"{self.url}/v1.0/$metadata#applications/$entity", **body})

    # ------------------------------------------------------------------------------------- groups
    def groups(self, req: Request, params: dict) -> Response:
        rows = req.tenant.groups
        allowed = {"mail": "mail", "displayname": "displayName", "id": "id"}
        return self.collection(
            req,
            kind="groups",
            context="groups",
            items=lambda f: self._filtered(rows, f, allowed, "Group"),
            known=_known(rows, GROUP_HIDDEN, "group"),
            entity="group",
            default=lambda g: public(g, GROUP_HIDDEN),
        )

    def _group(self, req: Request, params: dict) -> dict:
        group = req.tenant.group_by_id.get(params["group"].lower())
        if group is None:
            raise not_found(params["group"])
        return group

    def group(self, req: Request, params: dict) -> Response:
        group = self._group(req, params)
        select = parse_select(req, _known([group], GROUP_HIDDEN, "group"), "group")
        body = project(group, select) if select else public(group, GROUP_HIDDEN)
        return Response.json(200, {"@odata.context": f"{self.url}/v1.0/$metadata#groups/$entity", **body})

    def transitive_users(self, req: Request, params: dict) -> Response:
        tenant: TenantState = req.tenant
        group = self._group(req, params)

        def members(raw: str | None) -> list[dict]:
            if raw:
                raise GraphFail(400, "Request_UnsupportedQuery", "Unsupported Query.")
            return [tenant.by_key[i.lower()] for i in tenant.transitive_user_ids(group["id"])]

        return self.collection(
            req,
            kind=f"members:{group['id']}",
            context="users",
            items=members,
            known=USER_SELECTABLE,
            entity="user",
            default=lambda u: project(u, USER_DEFAULT),
        )

    def member_users(self, req: Request, params: dict) -> Response:
        """Direct user members of a group (no nesting), as GET /groups/{id}/members/microsoft.graph.user."""
        tenant: TenantState = req.tenant
        group = self._group(req, params)
        users = [tenant.by_key[i.lower()] for i in group.get("members", []) if i.lower() in tenant.by_key]
        return self.collection(
            req,
            kind=f"direct:{group['id']}",
            context="users",
            items=lambda f: self._no_filter(f, users),
            known=USER_SELECTABLE,
            entity="user",
            default=lambda u: project(u, USER_DEFAULT),
        )

    # ------------------------------------------------------------------------------------- administrative units
    def units(self, req: Request, params: dict) -> Response:
        rows = req.tenant.spec.get("administrative_units", [])
        allowed = {"displayname": "displayName", "id": "id"}
        return self.collection(
            req,
            kind="units",
            context="directory/administrativeUnits",
            items=lambda f: self._filtered(rows, f, allowed, "AdministrativeUnit"),
            known={"id": "id", "displayname": "displayName", "description": "description"},
            entity="administrativeUnit",
            default=lambda u: {k: v for k, v in u.items() if k != "members"},
        )

    def unit_members(self, req: Request, params: dict) -> Response:
        """Members of an administrative unit as directory objects, each with its @odata.type."""
        tenant: TenantState = req.tenant
        key = params["unit"].lower()
        unit = next((u for u in tenant.spec.get("administrative_units", []) if u["id"].lower() == key), None)
        if unit is None:
            raise not_found(params["unit"])
        rows = []
        for member in unit.get("members", []):
            user = tenant.by_key.get(member.lower())
            if user is not None:
                rows.append({"@odata.type": "#microsoft.graph.user", **user})
            elif member.lower() in tenant.group_by_id:
                rows.append({"@odata.type": "#microsoft.graph.group", **tenant.group_by_id[member.lower()]})
        return self.collection(
            req,
            kind=f"unit:{unit['id']}",
            context="directoryObjects",
            items=lambda f: self._no_filter(f, rows),
            known={"id": "id", "displayname": "displayName"},
            entity="directoryObject",
            default=lambda o: {"@odata.type": o["@odata.type"], "id": o["id"], "displayName": o.get("displayName")},
        )


def _service_of(plan_name: str) -> str:
    return SERVICE_OF_PLAN.get(plan_name) or ("exchange" if plan_name.upper().startswith("EXCHANGE") else plan_name)
