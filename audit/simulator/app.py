"""The simulator's request handling, independent of sockets: routing, tokens, faults, limits, $batch."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt

from . import catalog
from .directory import DirectoryHandlers
from .identity import IdentityHandlers, decode_access_token
from .limits import (
    BATCH,
    BATCH_OUTLOOK_PARALLEL,
    DIRECTORY,
    IDENTITY,
    OTHER,
    OUTLOOK,
    REPORTS,
    Counters,
    FaultDice,
    FaultSpec,
    Limits,
    OutlookGate,
    TokenBucket,
    format_seconds,
)
from .mail import MailHandlers
from .odata import GraphFail, Request, Response, fail_response, graph_error, refuse_repeated_options
from .pki import new_key
from .reports import PERIODS, mailbox_usage_csv
from .state import TenantState
from .workload import FEDERATION_PATH, MANAGED_IDENTITY_PATH, WorkloadIdentity, federated_credentials_answer

log = logging.getLogger("audit.simulator")
DROP = object()  # answer: close the connection without a response
MAX_BATCH = 20
TEXT_ROUTES = frozenset({"users.count", "reports.mailboxUsageDetail"})  # answers that are not JSON
# Answers that carry a list (`value`, or `responses` for $batch): only these can be missing it.
LIST_ROUTES = frozenset(
    {
        "users.list",
        "deletedUsers",
        "deletedItems",
        "organization",
        "domains",
        "subscribedSkus",
        "servicePrincipals.list",
        "servicePrincipals.links",
        "applications.list",
        "groups.list",
        "groups.transitiveUsers",
        "groups.memberUsers",
        "administrativeUnits.list",
        "administrativeUnits.members",
        "batch",
    }
)

_DIRECTORY_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
USERS = _DIRECTORY_READ | {"User.Read.All", "User.ReadWrite.All"}
ORG = _DIRECTORY_READ | {"Organization.Read.All", "Organization.ReadWrite.All"}
DOMAINS = _DIRECTORY_READ | {"Domain.Read.All", "Domain.ReadWrite.All"}
APPS = _DIRECTORY_READ | {"Application.Read.All", "Application.ReadWrite.All"}
GROUPS = _DIRECTORY_READ | {"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All"}
UNITS = _DIRECTORY_READ | {"AdministrativeUnit.Read.All", "AdministrativeUnit.ReadWrite.All"}
MAILBOX_SETTINGS = frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"})
MAIL_READ = frozenset({"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All", "Mail.ReadBasic"})
MAIL_WRITE = frozenset({"Mail.ReadWrite"})
MAIL_SEND = frozenset({"Mail.Send"})
REPORTS_READ = frozenset({"Reports.Read.All"})


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    request_class: str
    name: str
    handler: str
    roles: frozenset[str]
    mail_denial: bool = False  # 403 ErrorAccessDenied (Exchange) rather than Authorization_RequestDenied
    cost: int = 1  # directory resource units before the $select/$top discounts
    self_readable: bool = False  # an app may read its own object without permissions


def _r(pattern: str) -> re.Pattern:
    return re.compile("^" + pattern + "$", re.IGNORECASE)


_U = r"/users/(?P<user>[^/]+)"
_M = _U + r"/messages/(?P<message>[^/]+)"
_APP = r"\(appId='(?P<app>[^']*)'\)"
_LINK = r"/(?P<link>appRoleAssignments|oauth2PermissionGrants)"
ROUTES: tuple[Route, ...] = (
    Route("GET", _r("/users"), DIRECTORY, "users.list", "users_list", USERS, cost=2),
    Route("GET", _r(r"/users/\$count"), DIRECTORY, "users.count", "users_count", USERS),
    Route(
        "GET",
        _r(_U + r"/mailboxSettings(?:/(?P<setting>[^/]+))?"),
        OUTLOOK,
        "mailboxSettings",
        "mailbox_settings",
        MAILBOX_SETTINGS,
        True,
    ),
    Route(
        "GET",
        _r(_U + r"/mailFolders/(?P<folder>[^/]+)"),
        OUTLOOK,
        "mailFolders",
        "mail_folder",
        MAIL_READ,
        True,
    ),
    Route("POST", _r(_U + "/sendMail"), OUTLOOK, "sendMail", "send_mail", MAIL_SEND, True),
    Route("POST", _r(_U + "/messages"), OUTLOOK, "messages.create", "create_message", MAIL_WRITE, True),
    Route("POST", _r(_M + "/attachments"), OUTLOOK, "attachments.add", "add_attachment", MAIL_WRITE, True),
    Route(
        "POST",
        _r(_M + "/attachments/createUploadSession"),
        OUTLOOK,
        "attachments.uploadSession",
        "create_upload_session",
        MAIL_WRITE,
        True,
    ),
    Route("POST", _r(_M + "/send"), OUTLOOK, "messages.send", "send_draft", MAIL_SEND, True),
    Route("GET", _r(_U), DIRECTORY, "users.get", "user_get", USERS),
    Route(
        "GET",
        _r(r"/directory/deletedItems/microsoft\.graph\.user"),
        DIRECTORY,
        "deletedUsers",
        "deleted_users",
        USERS,
    ),
    Route("GET", _r("/directory/deletedItems"), DIRECTORY, "deletedItems", "deleted_uncast", USERS),
    Route("GET", _r("/organization"), DIRECTORY, "organization", "organization", ORG),
    Route("GET", _r("/domains"), DIRECTORY, "domains", "domains", DOMAINS),
    Route("GET", _r("/subscribedSkus"), DIRECTORY, "subscribedSkus", "subscribed_skus", ORG, cost=3),
    Route("GET", _r("/servicePrincipals"), DIRECTORY, "servicePrincipals.list", "service_principals", APPS),
    Route(
        "GET",
        _r("/servicePrincipals" + _APP),
        DIRECTORY,
        "servicePrincipals.get",
        "service_principal",
        APPS,
        self_readable=True,
    ),
    Route(
        "GET",
        _r("/servicePrincipals" + _APP + _LINK),
        DIRECTORY,
        "servicePrincipals.links",
        "sp_links",
        APPS,
        cost=2,
    ),
    Route(
        "GET",
        _r(r"/servicePrincipals/(?P<sp>[^/(]+)"),
        DIRECTORY,
        "servicePrincipals.get",
        "service_principal",
        APPS,
    ),
    Route(
        "GET",
        _r(r"/servicePrincipals/(?P<sp>[^/(]+)" + _LINK),
        DIRECTORY,
        "servicePrincipals.links",
        "sp_links",
        APPS,
        cost=2,
    ),
    Route("GET", _r("/applications"), DIRECTORY, "applications.list", "applications", APPS, cost=2),
    Route(
        "GET",
        _r("/applications" + _APP),
        DIRECTORY,
        "applications.get",
        "application",
        APPS,
        cost=2,
        self_readable=True,
    ),
    Route("GET", _r(r"/applications/(?P<id>[^/(]+)"), DIRECTORY, "applications.get", "application", APPS, cost=2),
    Route("GET", _r("/groups"), DIRECTORY, "groups.list", "groups", GROUPS),
    Route("GET", _r(r"/groups/(?P<group>[^/]+)"), DIRECTORY, "groups.get", "group", GROUPS),
    Route(
        "GET",
        _r(r"/groups/(?P<group>[^/]+)/transitiveMembers/microsoft\.graph\.user"),
        DIRECTORY,
        "groups.transitiveUsers",
        "transitive_users",
        GROUPS,
    ),
    Route(
        "GET",
        _r(r"/groups/(?P<group>[^/]+)/members/microsoft\.graph\.user"),
        DIRECTORY,
        "groups.memberUsers",
        "member_users",
        GROUPS,
    ),
    Route("GET", _r("/directory/administrativeUnits"), DIRECTORY, "administrativeUnits.list", "units", UNITS),
    Route(
        "GET",
        _r(r"/directory/administrativeUnits/(?P<unit>[^/]+)/members"),
        DIRECTORY,
        "administrativeUnits.members",
        "unit_members",
        UNITS,
    ),
    Route(
        "GET",
        _r(r"/reports/getMailboxUsageDetail\(period='(?P<period>[^']*)'\)"),
        REPORTS,
        "reports.mailboxUsageDetail",
        "usage_report",
        REPORTS_READ,
    ),
    Route("POST", _r(r"/\$batch"), BATCH, "batch", "batch", frozenset()),
)


def parse_query(raw: str) -> dict[str, str]:
    """Query options; OData option names ($select, $Top ...) are case-insensitive, so lower-cased."""
    return {(k.lower() if k.startswith("$") else k): v for k, v in parse_qsl(raw, keep_blank_values=True)}


class SimApp(DirectoryHandlers, MailHandlers, IdentityHandlers):
    """Answers one HTTP request at a time (thread-safe); the server turns results into bytes."""

    def __init__(self, tenants: list[dict], faults: FaultSpec, limits: Limits | None) -> None:
        self.url = ""
        self.tenants = [TenantState(t) for t in tenants]
        self._by_name: dict[str, TenantState] = {}
        for tenant in self.tenants:
            for name in tenant.names:
                self._by_name[name] = tenant
        self.faults, self.limits = faults, limits
        self.counters = Counters()
        self.dice = FaultDice(faults)
        self.gate = OutlookGate(limits.outlook_concurrency if limits else None, self.counters)
        self.signing_key = new_key()
        self.key_id = secrets.token_urlsafe(12)
        self.workload = WorkloadIdentity()
        self.sent_mail: list[dict] = []
        self.mail_lock = threading.Lock()
        self.upload_sessions: dict[str, dict] = {}
        self.downloads: dict[str, tuple[TenantState, str, float]] = {}
        self.issued: dict[str, float] = {}  # token id (uti) -> exact issue time, for token_ttl
        self._buckets: dict[tuple, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._order = random.Random(faults.seed + 1)
        self._order_lock = threading.Lock()

    def resolve_tenant(self, segment: str) -> TenantState | None:
        return self._by_name.get(segment.lower())

    # ------------------------------------------------------------------------------------- entry point
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes):
        """Response, or DROP to close the connection without answering."""
        self.counters.add("http_requests")
        if self.limits and self.limits.rtt:
            time.sleep(self.limits.rtt)  # the network's round trip: paid per HTTP request, outside any Graph cap
        split = urlsplit(raw_path)
        path = unquote(split.path).rstrip("/") or "/"
        query = parse_query(split.query)
        try:
            if path.lower().startswith("/v1.0/"):
                refuse_repeated_options(split.query)
                return self.graph(Request(method, path[5:], query, headers, body))
            if path.startswith("/upload/") and method == "PUT":
                self.counters.count(OUTLOOK, "attachments.upload")
                return self.upload_chunk(path[len("/upload/") :], query, headers, body)
            if path.startswith("/reports-download/") and method == "GET":
                self.counters.count(OTHER, "reports.download")
                return self.download(path[len("/reports-download/") :])
            if method == "GET" and (path == MANAGED_IDENTITY_PATH or path.startswith(FEDERATION_PATH + "/")):
                return self.workload_request(path, query, headers)
            return self.identity(method, path, headers, body)
        except GraphFail as err:
            return fail_response(err, Request(method, path, query, headers, body))

    def identity(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        parts = path.strip("/").split("/")
        rest = "/".join(parts[1:]).lower()
        if len(parts) >= 2 and rest == "v2.0/.well-known/openid-configuration" and method == "GET":
            self.counters.count(IDENTITY, "openid")
            host = headers.get("host")
            return self.openid_configuration(parts[0], f"https://{host}" if host else None)
        if len(parts) >= 2 and rest == "oauth2/v2.0/token" and method == "POST":
            self.counters.count(IDENTITY, "token")
            response, claims = self.token(parts[0], headers, body)
            self.counters.add("tokens_issued" if claims else "token_errors")
            if claims:
                self.issued[claims["uti"]] = time.time()
            return response
        self.counters.count(OTHER, "unknown")
        return Response.text(404, "Not Found")

    def workload_request(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        self.counters.count(IDENTITY, "managed_identity" if path == MANAGED_IDENTITY_PATH else "federation")
        if path != MANAGED_IDENTITY_PATH:
            return federated_credentials_answer(self.workload, self.url, path) or Response.text(404, "Not Found")
        response, claims = self.managed_identity_token(query, headers)
        self.counters.add("tokens_issued" if claims else "token_errors")
        if claims:
            self.issued[claims["uti"]] = time.time()
        return response

    # ------------------------------------------------------------------------------------- graph
    def match(self, method: str, path: str) -> tuple[Route, dict] | Response:
        wrong_method = False
        for route in ROUTES:
            found = route.pattern.match(path)
            if found:
                if route.method == method:
                    return route, found.groupdict()
                wrong_method = True
        if wrong_method:
            return graph_error(
                405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            )
        segment = path.strip("/").split("/")[0] if path.strip("/") else ""
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    def graph(self, req: Request):
        found = self.match(req.method, req.path)
        if isinstance(found, Response):
            self.counters.count(OTHER, "unmatched")
            return found
        route, params = found
        self.counters.count(route.request_class, route.name)
        fault = self.dice.draw(allow_bad_body=route.name not in TEXT_ROUTES)
        if fault == "no_value" and route.name not in LIST_ROUTES:
            fault = "bad_json"  # a single object (mailboxSettings, a user) has no `value` to lose: cut it off
        if fault == "drop":
            self.counters.add("drops")
            return DROP
        if fault:
            return self.fault_response(fault, req)
        denied = self.authenticate(req)
        if denied:
            return denied
        if route.name == "batch":
            return self.batch(req)
        return self.execute(route, params, req)

    def authenticate(self, req: Request) -> Response | None:
        def refuse(message: str) -> Response:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                message,
                req,
                {
                    "WWW-Authenticate": f'Bearer realm="", authorization_uri="{self.url}/common/oauth2/'
                    f'authorize", client_id="{catalog.GRAPH_APP_ID}"'
                },
            )

        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refuse("Access token is empty.")
        audiences = [self.url, "https://graph.microsoft.com", catalog.GRAPH_APP_ID]
        try:
            claims = decode_access_token(token.strip(), self.signing_key.public_key(), audiences)
        except jwt.ExpiredSignatureError:
            return refuse("Access token has expired or is not yet valid.")
        except jwt.InvalidAudienceError:
            return refuse("Access token validation failure. Invalid audience.")
        except jwt.PyJWTError:
            return refuse("Access token validation failure.")
        ttl = self.faults.token_ttl
        issued = self.issued.get(str(claims.get("uti")), float(claims["iat"]))
        if ttl is not None and time.time() - issued > ttl:
            return refuse("Lifetime validation failed, the token is expired.")
        tenant = self._by_name.get(str(claims["tid"]).lower())
        if tenant is None:
            return refuse("Access token validation failure.")
        req.claims, req.tenant = claims, tenant
        return None

    def fault_response(self, fault: str, req: Request) -> Response:
        if fault in ("bad_json", "no_value"):  # a 200 the client cannot use; never inside a $batch
            self.counters.add("bad_bodies")
            retry = {"Retry-After": self.dice.retry_after()}
            if fault == "no_value":
                return Response.json(200, {"@odata.context": f"{self.url}/v1.0/$metadata#{req.path}"}, retry)
            return Response(
                200,
                b'{"@odata.context":"' + self.url.encode() + b'","value":[{"id":"',
                {"Content-Type": "application/json", **retry},
            )
        if fault == "429":
            return graph_error(
                429,
                "TooManyRequests",
                "Please retry again later.",
                req,
                {"Retry-After": self.dice.retry_after()},
            )
        if fault == "503":
            return graph_error(503, "serviceNotAvailable", "The service is temporarily unavailable.", req)
        return graph_error(504, "UnknownError", "The gateway timed out.", req)

    def _key(self, req: Request) -> tuple[str, str]:
        return str(req.claims["appid"]), str(req.claims["tid"])

    def _outlook_key(self, req: Request, params: dict) -> tuple[str, ...]:
        """What the Outlook cap counts per: the app, the app in a tenant, or the app on one mailbox."""
        app_id, tenant_id = self._key(req)
        scope = self.limits.outlook_scope if self.limits else "app"
        if scope == "app":
            return (app_id,)
        if scope == "app-tenant":
            return app_id, tenant_id
        return app_id, tenant_id, str(params.get("user") or "").lower()

    def _bucket(self, key: tuple, capacity: float, per_second: float) -> TokenBucket:
        with self._buckets_lock:
            if key not in self._buckets:
                self._buckets[key] = TokenBucket(capacity, per_second)
            return self._buckets[key]

    def check_roles(self, route: Route, req: Request, params: dict) -> Response | None:
        if not route.roles:
            return None
        roles = set(req.claims.get("roles") or ())
        if roles & route.roles:
            return None
        if route.self_readable and (params.get("app") or "").lower() == str(req.claims["appid"]).lower():
            return None
        if route.mail_denial:
            return graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", req)
        return graph_error(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", req
        )

    def admit(self, route: Route, req: Request) -> Response | None:
        """Global per-app rate and directory resource units; None when the call may run."""
        limits = self.limits
        if limits is None:
            return None
        app_id, tenant_id = self._key(req)
        if limits.global_rps:
            wait = self._bucket(("app", app_id), limits.global_rps, limits.global_rps).take(1)
            if wait:
                return graph_error(
                    429,
                    "TooManyRequests",
                    "Please retry again later.",
                    req,
                    {
                        "Retry-After": format_seconds(wait),
                        "x-ms-throttle-scope": f"Application/Read/{app_id}",
                    },
                )
        if limits.ru_per_10s and route.request_class == DIRECTORY:
            cost = route.cost - (1 if "$select" in req.query else 0)
            top = req.query.get("$top", "")
            cost -= 1 if top.isdigit() and int(top) < 20 else 0
            cost = max(1, cost)
            bucket = self._bucket(("ru", app_id, tenant_id), limits.ru_per_10s, limits.ru_per_10s / 10)
            wait = bucket.take(cost)
            if wait:
                return graph_error(
                    429,
                    "TooManyRequests",
                    "Please retry again later.",
                    req,
                    {
                        "Retry-After": format_seconds(wait),
                        "x-ms-throttle-scope": f"Tenant_Application/Read/{app_id}/{tenant_id}",
                        "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                    },
                )
        return None

    def outlook_throttled(self, req: Request) -> Response:
        retry = self.limits.outlook_retry_after if self.limits else 1.0
        return graph_error(
            429,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
            req,
            {"Retry-After": format_seconds(retry)},
        )

    def execute(self, route: Route, params: dict, req: Request, reserved: bool = False) -> Response:
        """Role check, limits, the Outlook gate (unless the caller holds a slot), latency, the handler."""
        denied = self.check_roles(route, req, params) or self.admit(route, req)
        if denied:
            return denied
        if route.request_class == OUTLOOK and not reserved:
            key = self._outlook_key(req, params)
            if self.gate.reserve(key, 1) == 0:
                return self.outlook_throttled(req)
            try:
                return self._run(route, params, req)
            finally:
                self.gate.release(key)
        return self._run(route, params, req)

    def _run(self, route: Route, params: dict, req: Request) -> Response:
        delay = self.faults.latency + (self.limits.latency.get(route.request_class, 0.0) if self.limits else 0.0)
        if delay:
            time.sleep(delay)
        try:
            return getattr(self, route.handler)(req, params)
        except GraphFail as err:
            return fail_response(err, req)
        except Exception:  # a simulator bug: answer like a failing service, and say so in the log
            log.exception("simulator handler %s failed", route.handler)
            return graph_error(500, "InternalServerError", "The simulator failed to handle this request.", req)

    # ------------------------------------------------------------------------------------- reports
    def usage_report(self, req: Request, params: dict) -> Response:
        period = params["period"]
        if period.upper() not in PERIODS:
            raise GraphFail(
                400,
                "BadRequest",
                f"Invalid value '{period}' for the period parameter: use D7, D30, D90 or D180.",
            )
        fmt = (req.query.get("$format") or "text/csv").lower()
        if fmt == "application/json":
            raise GraphFail(400, "", "JSON format is not supported.")
        if fmt != "text/csv":
            raise GraphFail(400, "BadRequest", f"Invalid $format value '{fmt}'.")
        token = secrets.token_urlsafe(24)
        with self.mail_lock:
            self.downloads[token] = (req.tenant, period.upper(), time.monotonic() + 300)
        return Response.empty(
            302,
            {
                "Content-Type": "text/plain",
                "Location": f"{self.faults.download_base or self.url}/reports-download/{token}",
            },
        )

    def download(self, token: str) -> Response:
        with self.mail_lock:
            entry = self.downloads.get(token)
        if entry is None or entry[2] < time.monotonic():
            return Response.text(404, "The download link is unknown or has expired.")
        tenant, period, _ = entry
        data = mailbox_usage_csv(tenant, period, dt.datetime.now(dt.UTC).date())
        return Response(200, data, {"Content-Type": "application/octet-stream"})

    # ------------------------------------------------------------------------------------- $batch
    def batch(self, req: Request) -> Response:
        try:
            payload = json.loads(req.body or b"null")
        except ValueError:
            payload = None
        items = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            return graph_error(
                400, "BadRequest", "Invalid batch payload: a non-empty 'requests' array is required.", req
            )
        if len(items) > MAX_BATCH:
            return graph_error(
                400, "BadRequest", f"The batch contains {len(items)} requests; the limit is {MAX_BATCH}.", req
            )
        if not all(isinstance(i, dict) and i.get("id") is not None and i.get("method") and i.get("url") for i in items):
            return graph_error(400, "BadRequest", "Each request in a batch needs an id, a method and a url.", req)
        ids = [str(i["id"]) for i in items]
        if len({i.lower() for i in ids}) != len(ids):
            return graph_error(400, "BadRequest", "Batch request ids must be unique.", req)
        self.counters.batch(len(items))
        overhead = self.limits.latency.get(BATCH, 0.0) if self.limits else 0.0
        if overhead:
            time.sleep(overhead)

        results: dict[str, Response] = {}
        runnable: list[tuple[str, Request, Route, dict]] = []
        for item in items:
            sub = self._sub_request(item, req)
            found = self.match(sub.method, sub.path)
            if isinstance(found, Response):
                self.counters.count(OTHER, "unmatched")
                results[str(item["id"])] = found
                continue
            route, params = found
            self.counters.count(route.request_class, route.name)
            fault = self.dice.draw(allow_drop=False)
            if item.get("body") is not None and "content-type" not in sub.headers:
                results[str(item["id"])] = graph_error(
                    400,
                    "BadRequest",
                    f"Write request id : {item['id']} does not contain Content-Type header or body.",
                    sub,
                )
            elif route.name == "batch":
                results[str(item["id"])] = graph_error(400, "BadRequest", "A batch cannot contain a batch.", sub)
            elif fault:
                results[str(item["id"])] = self.fault_response(fault, sub)
            else:
                runnable.append((str(item["id"]), sub, route, params))

        # "refuse": the batch's Outlook items all start at once, and those over the cap are answered 429
        # before any runs. "queue" (and no limits): at most 4 run at once, each taking its slot as it starts.
        # A sequential batch (dependsOn) runs one item at a time, each taking its slot when it starts.
        depends = {str(i["id"]): [str(d) for d in i.get("dependsOn") or []] for i in items}
        sequential = any(depends.values())
        refuse = self.limits is not None and self.limits.outlook_batch == "refuse" and not sequential
        held: dict[str, tuple[str, ...]] = {}  # item id -> the Outlook slot it holds
        if refuse:
            for item_id, sub, route, params in runnable:
                if route.request_class != OUTLOOK:
                    continue
                key = self._outlook_key(sub, params)
                if self.gate.reserve(key, 1):
                    held[item_id] = key
                else:
                    results[item_id] = self.outlook_throttled(sub)
            runnable = [r for r in runnable if r[0] in held or r[2].request_class != OUTLOOK]

        def run(entry: tuple[str, Request, Route, dict]) -> tuple[str, Response]:
            item_id, sub, route, params = entry
            if item_id not in held:
                return item_id, self.execute(route, params, sub)
            try:
                return item_id, self.execute(route, params, sub, reserved=True)
            finally:
                self.gate.release(held.pop(item_id))

        if sequential:  # "fully sequential or fully parallel" (json-batching): run in order
            for entry in runnable:
                failed = [d for d in depends[entry[0]] if d in results and results[d].status >= 400]
                if failed:
                    results[entry[0]] = graph_error(424, "FailedDependency", "The dependent request failed.", entry[1])
                    continue
                item_id, response = run(entry)
                results[item_id] = response
        elif runnable:
            workers = len(runnable) if refuse else min(BATCH_OUTLOOK_PARALLEL, len(runnable))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for item_id, response in pool.map(run, runnable):
                    results[item_id] = response

        answers = []
        for item_id, response in results.items():
            self.counters.status(response.status)
            answer: dict = {
                "id": item_id,
                "status": response.status,
                "headers": {
                    k: v for k, v in response.headers.items() if k.lower() not in ("request-id", "client-request-id")
                },
            }
            if response.payload is not None:
                answer["body"] = response.payload
            elif response.body:
                answer["body"] = response.body.decode("utf-8", "replace")
            answers.append(answer)
        with self._order_lock:
            self._order.shuffle(answers)
        if answers and self.dice.chance(self.faults.batch_garble):
            answers = garbled(answers)
        return Response.json(200, {"responses": answers})

    @staticmethod
    def _sub_request(item: dict, outer: Request) -> Request:
        split = urlsplit(str(item["url"]))
        path = "/" + unquote(split.path).strip("/")
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        for name in ("client-request-id",):
            if name in outer.headers and name not in headers:
                headers[name] = outer.headers[name]
        body = item.get("body")
        raw = json.dumps(body).encode() if isinstance(body, (dict, list)) else (str(body).encode() if body else b"")
        return Request(
            str(item["method"]).upper(),
            path,
            parse_query(split.query),
            headers,
            raw,
            outer.claims,
            outer.tenant,
        )


def garbled(answers: list[dict]) -> list:
    """A $batch answer as a faulty gateway might pass it on (fault kind batch_garble): entries that answer no
    request first, then the items, the first with fields of the wrong type and the last one left out."""
    first, *rest = answers
    broken = {"id": first["id"], "status": str(first["status"]), "headers": list(first["headers"]), "body": 7}
    strays = ["not an item", {"id": "no-such-request", "status": 200, "headers": {}, "body": {}}, {"status": 200}]
    return [*strays, broken, *rest[:-1]]
