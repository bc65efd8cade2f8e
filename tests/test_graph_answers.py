"""How the Graph client reads answers Graph should not give but a proxy or a broken edge might: redirects at
the edges of 3xx and without a Location, text that is not clean UTF-8, empty bodies, JSON of the wrong
shape. A local HTTP server answers each request as the test scripts it; the client is the real one.

Graph's own forms are cited where they exist: the usage report answers 302 with a Location
(learn.microsoft.com/graph/api/reportroot-getmailboxusagedetail, "Response"), its CSV starts with a UTF-8
byte-order mark (as downloaded from the admin center and Graph alike), and a collection is an object with a
`value` array (learn.microsoft.com/graph/paging).
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

from audit.graph import GraphClient, GraphError
from tests.local_http import StaticToken, serving

Answer = tuple[int, dict[str, str], bytes]


class Script:
    """What the server answers, per path: a list of answers used in order, the last one repeated."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
        self.accepts: list[str | None] = []  # the Accept header of each request

    def answer(self, method: str, path: str, auth: str | None) -> Answer:
        path = unquote(path.split("?")[0])
        self.seen.append((method, path, auth))
        queue = self.answers.get(path) or [(404, {}, b'{"error": {"code": "NotScripted"}}')]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.accepts.append(self.headers.get("Accept"))
            status, headers, body = script.answer(self.command, self.path, self.headers.get("Authorization"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply  # noqa: N815 - http.server's hook names

        def log_message(self, *args) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as host:
        yield script, f"http://{host}"


def client_for(base: str, waits: list[float] | None = None, **options) -> GraphClient:
    record = waits if waits is not None else []
    return GraphClient(f"{base}/v1.0", StaticToken(), sleep=record.append, rng=lambda: 0.5, **options)


REPORT = "/reports/getMailboxUsageDetail(period='D7')"
CSV = b"Report Refresh Date,User Principal Name\n2026-11-30,ann@contoso.com\n"


# ---- the report's redirect -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308, 399])
def test_any_3xx_with_a_location_is_followed_without_the_token(server, status) -> None:
    script, base = server
    script.answers["/v1.0" + REPORT] = [(status, {"Location": f"{base}/download/r.csv"}, b"")]
    script.answers["/download/r.csv"] = [(200, {"Content-Type": "application/octet-stream"}, CSV)]
    assert client_for(base).get_report(REPORT).startswith("Report Refresh Date,User Principal Name")
    assert script.seen[-1] == ("GET", "/download/r.csv", None)  # the download goes without our token
    assert script.seen[0][2] == "Bearer token-1"


def test_a_relative_location_is_read_against_the_answer_that_gave_it(server) -> None:
    script, base = server
    script.answers["/v1.0" + REPORT] = [(302, {"Location": "/download/r.csv"}, b"")]
    script.answers["/download/r.csv"] = [(200, {}, CSV)]
    assert client_for(base).get_report(REPORT).endswith("ann@contoso.com\n")
    assert script.seen[-1] == ("GET", "/download/r.csv", None)


@pytest.mark.parametrize("headers", [{}, {"Location": ""}])
def test_a_redirect_without_a_location_is_an_unusable_answer(server, headers) -> None:
    script, base = server
    script.answers["/v1.0" + REPORT] = [(302, headers, b"")]
    with pytest.raises(GraphError) as caught:
        client_for(base).get_report(REPORT)
    error = caught.value
    assert (error.status, error.code, error.message) == (302, "InvalidResponse", "a redirect without a Location header")
    assert len(script.seen) == 1  # nothing to follow, nothing to retry


def test_a_report_answered_directly_is_the_report(server) -> None:
    script, base = server
    script.answers["/v1.0" + REPORT] = [(200, {}, CSV)]
    assert client_for(base).get_report(REPORT) == CSV.decode()
    assert len(script.seen) == 1


def test_a_400_to_the_report_call_is_its_error_not_a_redirect(server) -> None:
    script, base = server
    body = b'{"error": {"code": "BadRequest", "message": "Invalid period"}}'
    script.answers["/v1.0" + REPORT] = [(400, {"Location": f"{base}/download/r.csv"}, body)]
    with pytest.raises(GraphError) as caught:
        client_for(base).get_report(REPORT)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest") and len(script.seen) == 1


# ---- text ------------------------------------------------------------------------------------------


def test_text_loses_its_byte_order_mark_and_survives_bytes_that_are_not_utf8(server) -> None:
    script, base = server
    script.answers["/v1.0" + REPORT] = [(200, {}, b"\xef\xbb\xbf" + CSV)]
    script.answers["/v1.0/users/$count"] = [(200, {}, b"12\xff")]
    client = client_for(base)
    assert client.get_report(REPORT) == CSV.decode()
    assert client.get_text("/users/$count") == "12\ufffd"


# ---- bodies that may be empty, and JSON of the wrong shape -----------------------------------------


@pytest.mark.parametrize(("body", "read"), [(b"", None), (b"  \r\n", None), (b'{"id": "m1"}', {"id": "m1"})])
def test_a_post_answer_may_be_empty(server, body, read) -> None:
    script, base = server
    script.answers["/v1.0/users/u1/sendMail"] = [(202, {}, body)]
    assert client_for(base).post("/users/u1/sendMail", {"message": {}}) == read


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1, 2]", "the answer is not a JSON object"),
        (b'"text"', "the answer is not a JSON object"),
        (b"{not json", "the answer is not a JSON object"),
        (b"", "the answer is not a JSON object"),
    ],
)
def test_an_answer_that_is_no_json_object_is_retried_then_given_up_with_its_request_id(server, body, problem) -> None:
    script, base = server
    script.answers["/v1.0/organization"] = [(200, {"request-id": "req-7", "Retry-After": "7"}, body)]
    waits: list[float] = []
    with pytest.raises(GraphError) as caught:
        client_for(base, waits, max_attempts=3).get("/organization")
    error = caught.value
    assert (error.status, error.code, error.message, error.request_id) == (200, "InvalidResponse", problem, "req-7")
    assert waits == [7.0, 7.0] and len(script.seen) == 3  # Retry-After honoured between the attempts


@pytest.mark.parametrize("page", [b"{}", b'{"value": {}}', b'{"value": "x"}', b'{"value": null}'])
def test_a_page_without_a_value_list_is_unusable(server, page) -> None:
    script, base = server
    script.answers["/v1.0/users"] = [(200, {}, page)]
    waits: list[float] = []
    with pytest.raises(GraphError) as caught:
        list(client_for(base, waits, max_attempts=2).iter_pages("/users"))
    assert (caught.value.code, caught.value.message) == ("InvalidResponse", "the collection page has no 'value' list")
    assert waits == [0.5]  # no Retry-After: the client's own back-off, its first step at rng 0.5


def test_a_bad_answer_then_a_good_one_is_the_good_one(server) -> None:
    script, base = server
    script.answers["/v1.0/users"] = [(200, {}, b"{}"), (200, {}, b'{"value": [{"id": "u1"}]}')]
    assert list(client_for(base, max_attempts=2).iter_pages("/users")) == [[{"id": "u1"}]]


# ---- what an error carries ---------------------------------------------------------------------------


def test_an_error_without_a_request_id_in_its_body_takes_the_one_in_the_headers(server) -> None:
    # Graph puts request-id in the response headers and, usually, in error.innerError too
    # (learn.microsoft.com/graph/errors); a proxy's or gateway's error page has only the header.
    script, base = server
    script.answers["/v1.0/organization"] = [(400, {"request-id": "req-9"}, b'{"error": {"code": "BadRequest"}}')]
    script.answers["/v1.0/users"] = [(503, {"request-id": "req-5"}, b"<html>Service Unavailable</html>")]
    client = client_for(base, max_attempts=1)
    with pytest.raises(GraphError) as bad:
        client.get("/organization")
    with pytest.raises(GraphError) as down:
        client.get("/users")
    assert (bad.value.code, bad.value.request_id) == ("BadRequest", "req-9")
    assert (down.value.status, down.value.request_id) == (503, "req-5")


def test_a_retry_after_date_is_read_against_the_clients_own_clock(server) -> None:
    # Retry-After may be an HTTP-date (RFC 9110, section 10.2.3); the client compares it with the wall
    # clock it was given, so a test (or a machine with a skewed clock source) gets the same wait.
    script, base = server
    now = 1_800_000_000.0
    when = email.utils.formatdate(now + 30, usegmt=True)
    script.answers["/v1.0/organization"] = [(429, {"Retry-After": when}, b"{}"), (200, {}, b'{"id": "o"}')]
    script.answers["/v1.0/domains"] = [(200, {"Retry-After": when}, b"[1]"), (200, {}, b'{"value": []}')]
    item = {"id": "1", "status": 429, "headers": {"Retry-After": when}, "body": {}}
    done = {"id": "1", "status": 200, "body": {"userPurpose": "user"}}
    script.answers["/v1.0/$batch"] = [(200, {}, json.dumps({"responses": [r]}).encode()) for r in (item, done)]
    waits: list[float] = []
    client = client_for(base, waits, wall=lambda: now)
    assert client.get("/organization") == {"id": "o"}
    assert list(client.iter_pages("/domains")) == [[]]  # an unusable answer's Retry-After is honoured too
    assert client.batch([{"id": "1", "method": "GET", "url": "/users/u1/mailboxSettings"}])["1"].status == 200
    assert waits == [30.0, 30.0, 30.0]  # a batch item's own Retry-After as well


def test_a_sign_in_that_fails_mid_run_fails_the_call_with_the_reason(server) -> None:
    # The sign-in service can refuse a new token mid-run (secret revoked, service down): that Graph call
    # fails with the reason, so the tenant is partial, not aborted.
    from audit.auth import AuthError

    class Revoked(StaticToken):
        def token(self) -> str:
            raise AuthError("AADSTS7000222: the client secret has expired")

    _, base = server
    with pytest.raises(GraphError) as caught:
        GraphClient(f"{base}/v1.0", Revoked()).get("/organization")
    error = caught.value
    assert (error.status, error.code) == (0, "SignInFailed")
    assert error.message == "a new access token could not be obtained: AADSTS7000222: the client secret has expired"


def test_every_call_asks_for_json(server) -> None:
    # The local server answers JSON whatever it is asked, so only the header shows what the client asks for.
    script, base = server
    script.answers["/v1.0/organization"] = [(200, {}, b'{"id": "o"}')]
    script.answers["/v1.0/users/u1/sendMail"] = [(202, {}, b"")]
    client = client_for(base)
    client.get("/organization")
    client.post("/users/u1/sendMail", {"message": {}})
    assert script.accepts == ["application/json", "application/json"]


@pytest.mark.parametrize("header", ["request-id", "client-request-id"])
def test_the_debug_line_of_each_answer_names_its_request_id(server, caplog, header) -> None:
    # Graph's answers carry request-id and client-request-id headers (both are in the headers of each
    # json-batching item, learn.microsoft.com/graph/json-batching): whichever came, the debug log has it.
    script, base = server
    script.answers["/v1.0/organization"] = [(200, {header: "f00d-1"}, b'{"id": "o"}')]
    with caplog.at_level(logging.DEBUG, logger="audit"):
        client_for(base).get("/organization")
    assert "GET /v1.0/organization 200 request-id=f00d-1 attempt=1" in [r.getMessage() for r in caplog.records]


EXPIRED = (401, {}, b'{"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}')
DOWN = (503, {"Retry-After": "0"}, b'{"error": {"code": "serviceNotAvailable", "message": "Try later."}}')


def test_a_token_refreshed_after_a_401_costs_no_attempt(server) -> None:
    # The 401 for an expired token is answered by signing in again and sending once more; that resend is
    # not one of the client's attempts, so two attempts still ride out one 503.
    script, base = server
    script.answers["/v1.0/organization"] = [EXPIRED, DOWN, (200, {}, b'{"id": "o"}')]
    assert client_for(base, max_attempts=2).get("/organization") == {"id": "o"}
    assert len(script.seen) == 3


def test_a_call_that_runs_out_of_attempts_after_a_refresh_says_so_in_the_log(server, caplog) -> None:
    script, base = server
    script.answers["/v1.0/organization"] = [EXPIRED, DOWN, DOWN, (200, {}, b'{"id": "o"}')]
    with caplog.at_level(logging.DEBUG, logger="audit"), pytest.raises(GraphError) as caught:
        client_for(base, max_attempts=2).get("/organization")
    assert caught.value.status == 503 and len(script.seen) == 3  # the refresh, then two attempts
    gave_up = f"GET /v1.0/organization: giving up after 2 attempt(s): {caught.value}"
    assert gave_up in [r.getMessage() for r in caplog.records]
