"""Request/response values and the OData pieces Graph uses: errors, $select, $top, $filter, paging."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass
class Request:
    method: str
    path: str  # decoded, relative to the version root for Graph calls, e.g. "/users/x/mailboxSettings"
    query: dict[str, str]  # decoded values; option names lower-cased ("$select", "$top", ...)
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    claims: dict | None = None  # the validated access token
    tenant: Any = None  # TenantState of the token's tid

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None  # the JSON value behind `body`, kept for $batch items

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": JSON_TYPE, **(headers or {})}, value)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain", headers=None) -> Response:
        return cls(status, text.encode(), {"Content-Type": content_type, **(headers or {})}, text)

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class GraphFail(Exception):
    """Raised inside handlers to answer with Graph's error envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def graph_error(
    status: int,
    code: str,
    message: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Graph's error envelope, with the innerError fields the service fills in."""
    request_id = str(uuid.uuid4())
    client_request_id = (request.header("client-request-id") if request else None) or request_id
    inner = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id,
    }
    if status == 429:
        inner.update({"code": "429", "message": "Please retry after", "status": "429"})
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return Response.json(
        status, body, {"request-id": request_id, "client-request-id": client_request_id, **(headers or {})}
    )


def fail_response(error: GraphFail, request: Request) -> Response:
    return graph_error(error.status, error.code, error.message, request, error.headers)


# ---------------------------------------------------------------------------------------------- $select
def parse_select(request: Request, known: dict[str, str], entity: str) -> list[str] | None:
    """Canonical property names of $select (None when absent). `known`: lower-case name -> canonical."""
    raw = request.query.get("$select")
    if raw is None:
        return None
    names: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        canonical = known.get(part.lower())
        if canonical is None:
            raise GraphFail(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{part}' on type 'microsoft.graph.{entity}'.",
            )
        if canonical not in names:
            names.append(canonical)
    return names


def project(item: dict, names: list[str] | tuple[str, ...]) -> dict:
    return {name: item.get(name) for name in names}


def public(item: dict, hidden: frozenset[str]) -> dict:
    """The object without the simulator's own keys."""
    return {k: v for k, v in item.items() if k not in hidden}


# ---------------------------------------------------------------------------------------------- $top
def parse_top(request: Request, default: int = 100, maximum: int = 999) -> int:
    raw = request.query.get("$top")
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        raise GraphFail(400, "BadRequest", f"Invalid value '{raw}' for query option $top.") from None
    if not 1 <= top <= maximum:
        raise GraphFail(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top}'. Must be between 1 and {maximum} inclusive.",
        )
    return top


# ---------------------------------------------------------------------------------------------- $filter
class Clause:
    """One comparison of a $filter: `prop eq 'v'`, `prop in ('a','b')` or `proxyAddresses/any(p:p eq 'v')`."""

    def __init__(self, prop: str, values: list[str], lambda_any: bool = False) -> None:
        self.prop, self.values, self.lambda_any = prop, values, lambda_any


_QUOTED = r"'(?:[^']|'')*'"
_EQ = re.compile(rf"^\s*([A-Za-z]+)\s+eq\s+({_QUOTED})\s*$", re.IGNORECASE)
_IN = re.compile(rf"^\s*([A-Za-z]+)\s+in\s+\(\s*({_QUOTED}(?:\s*,\s*{_QUOTED})*)\s*\)\s*$", re.IGNORECASE)
_ANY = re.compile(rf"^\s*([A-Za-z]+)/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+({_QUOTED})\s*\)\s*$", re.IGNORECASE)
_OR = re.compile(rf"({_QUOTED})|\s+or\s+", re.IGNORECASE)
MAX_OR_CLAUSES = 15


def _unquote(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


def _split_or(text: str) -> list[str]:
    parts, start = [], 0
    for match in _OR.finditer(text):
        if match.group(1) is None:  # an " or " outside quotes
            parts.append(text[start : match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def parse_filter(raw: str, allowed: dict[str, str], entity: str, lambda_props: frozenset[str] = frozenset()):
    """Clauses joined by ` or `. `allowed`: lower-case property -> canonical for eq/in.

    Graph caps a directory filter at 15 `or` terms (an `in` list counts each value).
    """
    clauses: list[Clause] = []
    for part in _split_or(raw):
        if match := _EQ.match(part):
            prop, values = match.group(1), [_unquote(match.group(2))]
        elif match := _IN.match(part):
            prop, values = match.group(1), [_unquote(v) for v in re.findall(_QUOTED, match.group(2))]
        elif (match := _ANY.match(part)) and match.group(2).lower() == match.group(3).lower():
            prop = match.group(1)
            if prop.lower() not in lambda_props:
                raise _unsupported(prop, entity)
            clauses.append(Clause(prop.lower(), [_unquote(match.group(4))], lambda_any=True))
            continue
        else:
            raise GraphFail(400, "Request_UnsupportedQuery", "Unsupported Query.")
        canonical = allowed.get(prop.lower())
        if canonical is None:
            raise _unsupported(prop, entity)
        clauses.append(Clause(canonical, values))
    terms = sum(len(c.values) for c in clauses)
    if terms > MAX_OR_CLAUSES:
        raise GraphFail(
            400,
            "Request_UnsupportedQuery",
            "Too many child clauses specified in search filter expression containing 'OR' operators: "
            f"{terms}. Max allowed: {MAX_OR_CLAUSES}.",
        )
    return clauses


def _unsupported(prop: str, entity: str) -> GraphFail:
    return GraphFail(
        400,
        "Request_UnsupportedQuery",
        f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{entity}'.",
    )


# ---------------------------------------------------------------------------------------------- paging
def refuse_repeated_options(raw_query: str) -> None:
    """A system query option ($top, $select, $skiptoken ...) may be given once: OData's URL conventions
    allow each at most once (oasis-tcs/odata-specs#2004, #2007), and a strict server refuses the rest. A
    client that adds its first query to an `@odata.nextLink` repeats them; Graph's paging guide says to
    request the next link's URL as it is (Graph docs concepts/paging.md)."""
    seen: set[str] = set()
    for name, _ in parse_qsl(raw_query, keep_blank_values=True):
        option = name.lower()
        if not option.startswith("$"):
            continue
        if option in seen:
            raise GraphFail(
                400,
                "BadRequest",
                f"Query option '{name}' was specified more than once, but it must be specified at most once.",
            )
        seen.add(option)


def encode_skiptoken(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return "RFNwdAIA" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> dict:
    try:
        if not token.startswith("RFNwdAIA"):
            raise ValueError
        raw = token[8:]
        state = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(state, dict):
            raise ValueError
        return state
    except ValueError:
        raise GraphFail(400, "Request_BadRequest", "Invalid skip token.") from None
