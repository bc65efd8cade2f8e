"""The Graph client at its edges: the limits and shapes a one-character slip would move.

Pure helpers first, then the Outlook limiter and read-ahead, then the client against the simulator over real
HTTPS. Each test here was written against a surviving mutant of audit/graph.py (README, "Mutation testing").
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from pathlib import Path

import pytest

from audit import logs
from audit.auth import TokenProvider, graph_base
from audit.graph import (
    BatchItem,
    GraphClient,
    GraphError,
    GraphStats,
    OutlookLimiter,
    is_concurrency_refusal,
    odata_string,
    origin,
    parse_error,
    parse_retry_after,
    read_ahead,
    tls_failure,
)
from audit.simulator import Limits, Simulator, generate_tenant
from tests.local_http import serving
from tests.simconfig import secrets_env, sim_config

# ---- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("https://Graph.Microsoft.com/v1.0/users", "https://graph.microsoft.com:443"),
        ("http://graph.example/v1.0", "http://graph.example:80"),  # each scheme's own default port
        ("https://graph.example:8443/v1.0?$top=1", "https://graph.example:8443"),
        ("https://graph.example:99999/v1.0", "https://graph.example:443"),  # a port out of range is no port
        ("file:///etc/hosts", "file://"),  # no host and no port to name
    ],
)
def test_an_origin_is_scheme_host_and_port_only(url: str, where: str) -> None:
    assert origin(url) == where


def test_a_quote_in_a_filter_value_is_written_twice() -> None:
    # OData 4.01 URL Conventions: a single quote inside a string literal is escaped by doubling it.
    assert odata_string("O'Brien") == "'O''Brien'"
    assert odata_string("it''s") == "'it''''s'"
    assert odata_string("plain") == "'plain'"


def test_a_retry_after_date_is_read_against_the_clock_when_no_time_is_given() -> None:
    # Retry-After is delay-seconds or an HTTP-date (RFC 9110, section 10.2.3); Graph sends seconds
    # (learn.microsoft.com/graph/throttling), a proxy in the way may send a date.
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 < (parse_retry_after(in_a_minute) or 0) <= 60


def test_a_retry_after_date_without_a_zone_is_read_as_gmt_whatever_the_local_zone(monkeypatch) -> None:
    # An HTTP-date is always GMT (RFC 9110, section 5.6.7); "-0000" is the mail form of "zone not known".
    now = 1_700_000_000.0
    naive = email.utils.formatdate(now + 30).rsplit(" ", 1)[0] + " -0000"
    for zone in ("America/New_York", "Asia/Tokyo", "UTC"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert parse_retry_after(naive, now=now) == 30.0
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        # Graph's envelope: error.code, error.message, error.innerError (learn.microsoft.com/graph/errors);
        # innerError can carry a code of its own, the 429 example a bare "429" (learn.microsoft.com/graph/
        # throttling).
        (
            {"error": {"code": "", "message": "m", "innerError": {"code": "ErrorItemNotFound"}}},
            "ErrorItemNotFound",
            "m",
        ),
        ({"error": {"innererror": {"CODE": "ErrorInvalidUser"}}}, "ErrorInvalidUser", "no error message in the answer"),
        ({"error": {"code": "", "innerError": {"code": "429"}}}, "HTTP418", "no error message in the answer"),
        ({"error": {"innerError": {"code": 7}}}, "HTTP418", "no error message in the answer"),
        ({"error": {"code": 403, "message": 42}}, "HTTP418", "no error message in the answer"),
        ({"error": {"code": ["x"], "message": {"text": "x"}}}, "HTTP418", "no error message in the answer"),
    ],
)
def test_an_error_code_or_message_that_is_no_string_is_not_used(body: dict, code: str, message: str) -> None:
    error = parse_error(418, body)
    assert (error.code, error.message) == (code, message)


def test_the_request_id_is_taken_from_the_body_then_from_the_headers() -> None:
    # learn.microsoft.com/graph/errors: innerError carries request-id and client-request-id; the response
    # headers carry client-request-id too (learn.microsoft.com/dotnet/api/microsoft.graph.error.clientrequestid).
    inner = {"error": {"code": "x", "innerError": {"client-request-id": "inner-client"}}}
    assert parse_error(500, inner, {"request-id": "header"}).request_id == "inner-client"
    assert parse_error(500, {"error": {"code": "x"}}, {"Client-Request-Id": "header-client"}).request_id == (
        "header-client"
    )
    assert parse_error(500, {"error": {"code": "x"}}, {"request-id": "r", "client-request-id": "c"}).request_id == "r"
    assert parse_error(500, None).request_id is None
    assert parse_error(500, b"", {}).request_id is None


# Outlook's concurrency refusal: 429, code ApplicationThrottled, "Application is over its MailboxConcurrency
# limit." (github.com/alcionai/corso/issues/3695); other 429s are "TooManyRequests" (learn.microsoft.com/graph/
# throttling, the 429 example).
CAP_MESSAGE = "Application is over its MailboxConcurrency limit."


@pytest.mark.parametrize(
    ("status", "body", "refusal"),
    [
        (429, {"error": {"code": "ApplicationThrottled", "message": CAP_MESSAGE}}, True),
        (429, {"Error": {"Code": "ApplicationThrottled", "Message": "slow down"}}, True),  # keys in any case
        (429, {"error": {"code": "TooManyRequests", "message": CAP_MESSAGE}}, True),  # the text alone tells
        (429, {"ERROR": {"code": "TooManyRequests", "MESSAGE": "over the CONCURRENCY limit"}}, True),
        (429, {"error": {"code": "TooManyRequests", "message": "Please retry again later."}}, False),
        (429, {"error": {"code": "TooManyRequests", "message": None}}, False),
        (429, {"error": {"code": "TooManyRequests"}}, False),
        (429, {"error": "ApplicationThrottled"}, False),
        (429, None, False),
        (503, {"error": {"code": "ApplicationThrottled", "message": CAP_MESSAGE}}, False),
        (430, {"error": {"code": "ApplicationThrottled", "message": CAP_MESSAGE}}, False),
    ],
)
def test_only_a_429_from_the_outlook_cap_is_a_concurrency_refusal(status: int, body: object, refusal: bool) -> None:
    assert is_concurrency_refusal(status, body) is refusal  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [400, 401, 404, 424, 429, 500, 0, 199])
def test_a_batch_item_outside_2xx_and_3xx_is_an_error_with_its_own_status(status: int) -> None:
    # A $batch answer item carries its own status, headers and body (learn.microsoft.com/graph/json-batching).
    item = BatchItem("7", status, {"Request-Id": "item-rid"}, {"error": {"code": "Denied", "message": "no"}})
    error = item.error()
    assert error is not None
    assert (error.status, error.code, error.message, error.request_id) == (status, "Denied", "no", "item-rid")


@pytest.mark.parametrize("status", [200, 201, 204, 302, 399])
def test_a_batch_item_in_2xx_or_3xx_is_no_error(status: int) -> None:
    assert BatchItem("7", status, {}, {"error": {"code": "Denied"}}).error() is None


def test_stats_read_out_every_counter() -> None:
    stats = GraphStats()
    stats.count("directory", 2)
    stats.count("outlook", 3, in_batch=True)
    stats.count("batch")
    stats.add("throttled", 4)
    stats.add("retries")
    stats.add("token_refreshes", 2)
    snapshot = stats.as_dict()
    assert snapshot == {
        "requests": {"directory": 2, "outlook": 3, "batch": 1},
        "batch_items": {"outlook": 3},
        "throttled": 4,
        "retries": 1,
        "token_refreshes": 2,
    }
    stats.count("directory")
    assert snapshot["requests"]["directory"] == 2  # a copy, not the live counters


# ---- read-ahead -----------------------------------------------------------------------------------


def test_a_listing_without_pages_gives_none() -> None:
    assert list(read_ahead(iter([]))) == []


def test_pages_are_read_with_the_tenant_and_phase_of_the_caller() -> None:
    seen: list[dict] = []

    def pages():
        for n in range(2):
            seen.append(logs.current())  # runs in the read-ahead thread
            yield [{"id": str(n)}]

    with logs.context(tenant="contoso", phase="collect"):
        assert [p[0]["id"] for p in read_ahead(pages())] == ["0", "1"]
    assert seen == [{"tenant": "contoso", "phase": "collect"}] * 2


def test_a_caller_that_stops_early_does_not_wait_for_the_page_being_read() -> None:
    release = threading.Event()
    closed = threading.Event()
    saw_closed: list[bool] = []

    def pages():
        yield [{"id": "1"}]
        release.wait(10)  # the next page takes long to come
        yield [{"id": "2"}]

    def watchdog() -> None:
        saw_closed.append(closed.wait(5))
        release.set()

    listing = read_ahead(pages())
    assert next(listing) == [{"id": "1"}]  # page 2 is being read now
    guard = threading.Thread(target=watchdog)
    guard.start()
    listing.close()
    closed.set()
    guard.join()
    assert saw_closed == [True]  # close() came back while page 2 was still on its way


# ---- the Outlook limiter --------------------------------------------------------------------------


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def learnt_queue(ceiling: int = 16) -> OutlookLimiter:
    """A limiter whose first batch showed that Graph queues batch items (the limit is then 8)."""
    limiter = OutlookLimiter(ceiling=ceiling)
    limiter.release(limiter.try_acquire(20, Wakes(), True), refused=0, items=20)
    return limiter


def test_the_limiter_starts_at_the_documented_four_under_the_default_ceiling_of_sixteen() -> None:
    # learn.microsoft.com/graph/throttling-limits#outlook-service-limits: 4 concurrent requests per app.
    limiter = OutlookLimiter()
    assert (limiter.ceiling, limiter.limit, limiter.accepted, limiter.settled, limiter.refusals) == (16, 4, 0, False, 0)
    assert limiter.parallel()
    assert OutlookLimiter(ceiling=0).ceiling == 1 and OutlookLimiter(ceiling=1).ceiling == 1
    assert OutlookLimiter(ceiling=2).limit == 2
    grown = learnt_queue()
    held = [grown.try_acquire(20, Wakes(), True) for _ in range(2)]
    for slots in held:
        grown.release(slots, refused=0, items=20)
    assert grown.limit == 12  # 4 -> 8 -> 12 -> 16: the default ceiling is 16
    held = [grown.try_acquire(20, Wakes(), True) for _ in range(3)]
    for slots in held:
        grown.release(slots, refused=0, items=20)
    assert (grown.limit, grown.settled) == (16, False)
    held = [grown.try_acquire(20, Wakes(), True) for _ in range(4)]
    for slots in held:
        grown.release(slots, refused=0, items=20)
    assert (grown.limit, grown.accepted, grown.settled) == (16, 16, True)


def test_a_refusal_before_any_level_was_accepted_lowers_the_limit_by_one() -> None:
    limiter = OutlookLimiter(ceiling=16)
    first = limiter.try_acquire(4, Wakes(), True)  # as large as its slots: it cannot show the batch mode
    assert first == (4, True, 4, True)
    limiter.release(first, refused=1, items=4)
    assert (limiter.batch_mode, limiter.limit, limiter.settled, limiter.refusals) == (None, 3, True, 1)
    assert "Graph kept refusing, lowered to 3" in limiter.describe()
    two = OutlookLimiter(ceiling=2)  # sequential from the start: a batch of 4 items at once would pass 2
    slots = two.try_acquire(20, Wakes(), True)
    assert slots == (1, False, 2, False)
    two.release(slots, refused=1, items=20)
    assert (two.limit, two.settled) == (1, True)


def test_a_batch_as_large_as_its_slots_does_not_show_the_batch_mode() -> None:
    limiter = OutlookLimiter(ceiling=16)
    limiter.release(limiter.try_acquire(4, Wakes(), True), refused=0, items=4)
    assert limiter.batch_mode is None and limiter.limit == 4
    # still learning: the next batch again waits for every slot, and only one learns at a time
    wake = Wakes()
    learning = limiter.try_acquire(20, wake, True)
    assert learning == (4, True, 4, True)
    assert limiter.try_acquire(1, wake, True) is None
    limiter.release(learning, refused=0, items=20)
    assert limiter.batch_mode == "queue" and wake.count == 1


def test_refusals_after_settling_take_one_slot_each_down_to_one() -> None:
    limiter = learnt_queue()
    held = [limiter.try_acquire(20, Wakes(), True) for _ in range(2)]
    limiter.release(held[1], refused=2, items=20)  # back to the accepted 4, settled
    limiter.release(held[0], refused=0, items=20)
    assert (limiter.limit, limiter.settled, limiter.refusals) == (4, True, 2)
    for expected in (3, 2, 1, 1):
        slots = limiter.try_acquire(20, Wakes(), True)
        assert slots is not None and slots[2] == limiter.limit
        limiter.release(slots, refused=1, items=20)
        assert limiter.limit == expected
    assert limiter.refusals == 6
    assert "Graph refused more than 1 at once" in limiter.describe()


def test_a_parallel_batch_takes_no_more_slots_than_it_has_items_or_the_limit_allows() -> None:
    limiter = learnt_queue()
    assert limiter.try_acquire(2, Wakes(), False) == (2, False, 8, True)
    assert limiter.try_acquire(20, Wakes(), False) == (4, False, 8, True)
    small = OutlookLimiter(ceiling=5)
    small.release(small.try_acquire(20, Wakes(), True), refused=0, items=20)
    assert small.limit == 5
    assert small.try_acquire(20, Wakes(), False) == (4, False, 5, True)
    assert small.try_acquire(20, Wakes(), False) is None  # 4 + 4 > 5
    refusing = OutlookLimiter(ceiling=16)
    refusing.release(refusing.try_acquire(20, Wakes(), True), refused=0, items=20)
    held = [refusing.try_acquire(20, Wakes(), True) for _ in range(2)]
    refusing.release(held[1], refused=1, items=20)
    refusing.release(held[0], refused=0, items=20)
    slots = [refusing.try_acquire(20, Wakes(), True) for _ in range(2)]
    refusing.release(slots[0], refused=1, items=20)  # settled at 4, then 3 free
    refusing.release(slots[1], refused=0, items=20)
    assert refusing.limit == 3 and not refusing.parallel()
    assert refusing.try_acquire(20, Wakes(), False) == (1, False, 3, False)


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        (None, "no $batch was large enough to show how Graph runs batch items"),
        ("queue", "$batch items beyond 4 wait their turn"),
        ("refuse", "$batch items beyond 4 in flight are refused, so probes go in sequential batches"),
    ],
)
def test_the_limiter_says_what_it_learnt(mode: str | None, text: str) -> None:
    limiter = OutlookLimiter(ceiling=16)
    if mode:
        limiter.release(limiter.try_acquire(20, Wakes(), True), refused=16 if mode == "refuse" else 0, items=20)
    assert limiter.batch_mode == mode
    assert limiter.describe().startswith(f"up to {limiter.limit} Outlook probes in flight (")
    assert limiter.describe().endswith(f"); {text}")
    # The items a refusing batch could not run show the batch mode, not the cap: no refusal by the cap yet.
    assert limiter.describe() == f"up to {limiter.limit} Outlook probes in flight (Graph refused none); {text}"
    assert limiter.refusals == 0


def test_the_limiter_names_the_ceiling_once_it_reached_it() -> None:
    limiter = OutlookLimiter(ceiling=4)
    assert limiter.describe() == (
        "up to 4 Outlook probes in flight (the configured ceiling (audit.max_outlook_concurrency = 4); "
        "Graph refused none); no $batch was large enough to show how Graph runs batch items"
    )
    lowered = OutlookLimiter(ceiling=16)
    lowered.release(lowered.try_acquire(4, Wakes(), True), refused=2, items=4)
    assert lowered.describe().startswith("up to 3 Outlook probes in flight (Graph kept refusing, lowered to 3); ")


# ---- the client against the simulator -------------------------------------------------------------

USAGE_REPORT = "/reports/getMailboxUsageDetail(period='D7')"


@pytest.fixture(scope="module")
def tenant() -> dict:
    return generate_tenant("contoso", 60, seed=1, scenario="healthy")


class NotedToken:
    """The real token provider (msal against the simulator), noting the thread and log context of each use."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider
        self.uses: list[tuple[str, dict]] = []

    def token(self) -> str:
        self.uses.append((threading.current_thread().name, logs.current()))
        return self.provider.token()

    def invalidate(self) -> None:
        self.provider.invalidate()


def connect(sim: Simulator, spec: dict, monkeypatch: pytest.MonkeyPatch, **options: object):
    """A client for one simulated tenant that records its waits instead of sleeping."""
    for name, secret in secrets_env([(sim, spec)]).items():
        monkeypatch.setenv(name, secret)
    config = sim_config([(sim, spec)], Path("unused")).tenants[0]
    ca = str(sim.ca_path)
    token = NotedToken(TokenProvider(config, verify=ca))
    waits: list[float] = []
    options.setdefault("rng", lambda: 0.5)
    client = GraphClient(graph_base(config), token, verify=ca, sleep=waits.append, **options)  # type: ignore[arg-type]
    return client, token, waits


def mailbox_settings(spec: dict, count: int, offset: int = 0) -> list[dict]:
    users = spec["users"][offset : offset + count]
    return [{"id": u["id"], "method": "GET", "url": f"/users/{u['id']}/mailboxSettings"} for u in users]


def test_batch_ids_that_differ_only_in_case_are_one_id(sim_factory, monkeypatch, tenant) -> None:
    # learn.microsoft.com/graph/json-batching: the id is "Not case-sensitive. Must be unique in the batch,
    # otherwise, the batch request fails with a 400 error code."
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    for ids in (["Probe-1", "probe-1"], ["probe-1", "PROBE-1"], ["x", "y", "X"]):
        requests_ = [{"id": i, "method": "GET", "url": "/organization"} for i in ids]
        with pytest.raises(ValueError, match=f"duplicate batch request id '{ids[-1]}'"):
            client.batch(requests_)
    assert sim.counters.snapshot()["by_route"].get("batch", 0) == 0  # refused before anything was sent
    answers = client.batch([{"id": i, "method": "GET", "url": "/organization"} for i in ("a", "b", "c")])
    assert sorted(answers) == ["a", "b", "c"]


def test_batch_ids_given_as_numbers_are_sent_and_answered_as_strings(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    answers = client.batch([{"id": n, "method": "GET", "url": "/organization"} for n in (1, 2)])
    assert sorted(answers) == ["1", "2"] and {a.status for a in answers.values()} == {200}


def test_a_batch_of_one_request_each_is_possible(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    answers = client.batch(mailbox_settings(tenant, 3), per_batch=1)
    assert len(answers) == 3
    assert sim.counters.snapshot()["batch_sizes"] == [1, 1, 1]
    client.batch(mailbox_settings(tenant, 3, 3), per_batch=50)  # never more than Graph's 20
    client.batch(mailbox_settings(tenant, 25, 6), per_batch=50)
    assert sim.counters.snapshot()["batch_sizes"][3:] == [3, 20, 5]


def test_batches_go_one_at_a_time_from_the_caller_unless_more_may_be_in_flight(sim_factory, monkeypatch, tenant):
    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    caller = threading.current_thread().name
    context = {"tenant": "contoso", "phase": "probes"}
    with logs.context(**context):
        client.batch(mailbox_settings(tenant, 45))  # three batches, by default one after the other
        assert [name for name, _ in token.uses] == [caller] * 3
        token.uses.clear()
        client.batch(mailbox_settings(tenant, 10), in_flight=4)  # one batch: nothing to run beside it
        assert [name for name, _ in token.uses] == [caller]
        token.uses.clear()
        client.batch(mailbox_settings(tenant, 60), in_flight=2)  # three batches, two at a time
    names = [name for name, _ in token.uses]
    assert len(names) == 3 and caller not in names and len(set(names)) <= 2
    assert [seen for _, seen in token.uses] == [context] * 3  # the workers log under the caller's tenant


def outlook_cap_of_one(retry_after: float) -> Limits:
    """Graph running one Outlook item at a time and refusing the rest of a batch with 429 (the "refuse"
    reading of learn.microsoft.com/graph/throttling-limits#outlook-service-limits)."""
    return Limits(outlook_concurrency=1, outlook_batch="refuse", outlook_retry_after=retry_after)


def test_a_batch_waits_out_the_budget_exactly_and_no_more(sim_factory, monkeypatch, tenant, caplog) -> None:
    # Throttled items are sent again after the longest Retry-After among them (learn.microsoft.com/graph/
    # throttling, "Throttling and batching"). Three items, one runs per round, each refusal asks for 0.5 s.
    sim = sim_factory([tenant], limits=outlook_cap_of_one(0.5))
    client, _, waits = connect(sim, tenant, monkeypatch, max_wait=0.5)
    with caplog.at_level(logging.DEBUG, logger="audit"):
        answers = client.batch(mailbox_settings(tenant, 3))
    assert waits == [0.5]  # 0 + 0.5 is within a 0.5 s budget; 0.5 + 0.5 is not
    assert [a.status for a in answers.values()].count(429) == 1
    assert sim.counters.snapshot()["batch_sizes"] == [3, 2]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch: ")]
    assert lines == ["batch: re-sending 2 item(s) after 0.50s", "batch: 1 item(s) still throttled, wait budget spent"]


def test_a_batch_spends_its_whole_budget_over_several_rounds(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], limits=outlook_cap_of_one(0.5))
    client, _, waits = connect(sim, tenant, monkeypatch, max_wait=1.0)
    answers = client.batch(mailbox_settings(tenant, 4))
    assert waits == [0.5, 0.5]
    assert [a.status for a in answers.values()].count(429) == 1  # the others got through (200, or 404: no mailbox)


def test_text_answers_honour_their_query(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    upn = tenant["users"][0]["userPrincipalName"]
    eventual = {"ConsistencyLevel": "eventual"}
    count = client.get_text(
        "/users/$count", params={"$filter": f"userPrincipalName eq {odata_string(upn)}"}, headers=eventual
    )
    assert count == "1"
    assert client.get_text("/users/$count", headers=eventual) == str(len(tenant["users"]))


def test_the_usage_report_is_read_through_its_download_link(sim_factory, monkeypatch, tenant) -> None:
    # Graph answers the report call with 302 and a pre-authenticated download URL
    # (learn.microsoft.com/graph/api/reportroot-getmailboxusagedetail, "Response").
    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    text = client.get_report(USAGE_REPORT)
    assert text.startswith("Report Refresh Date,User Principal Name")
    assert len(text.strip().splitlines()) > 1
    assert len(token.uses) == 1  # the download itself goes without our token
    assert client.stats.requests == {"reports": 1, "other": 1}  # the download host is not Graph


def test_a_download_link_over_plain_http_is_followed_too(sim_factory, monkeypatch, tenant, caplog) -> None:
    # nothing listens on port 9; the link names a user and password, which never reach an error or a log line
    sim = sim_factory([tenant], faults="download_base=http://reader:s3cret-part@127.0.0.1:9")
    client, _, waits = connect(sim, tenant, monkeypatch, max_attempts=2)
    with caplog.at_level(logging.DEBUG, logger="audit"), pytest.raises(GraphError) as caught:
        client.get_report(USAGE_REPORT)
    assert caught.value.code == "ConnectionError"  # it was fetched, not handed back as the report
    assert caught.value.message.endswith(" downloading from 127.0.0.1:9") and waits == [0.5]
    assert "s3cret-part" not in caplog.text and "reader" not in caplog.text and "127.0.0.1:9 " in caplog.text


def test_post_sends_its_body_and_reads_an_empty_or_json_answer(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    sender = next(u for u in tenant["users"] if u.get("mailbox"))["id"]
    message = {"subject": "hello", "toRecipients": [{"emailAddress": {"address": "secops@contoso.com"}}]}
    assert client.post(f"/users/{sender}/sendMail", {"message": message}) is None  # 202, no body
    (sent,) = sim.sent_mail
    assert sent["message"]["subject"] == "hello"
    answer = client.post("/$batch", {"requests": [{"id": "1", "method": "GET", "url": "/organization"}]})
    assert isinstance(answer, dict) and [r["status"] for r in answer["responses"]] == [200]


def test_a_client_with_its_defaults_tries_six_times(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], faults="429=1,retry_after=0.01")
    client, _, waits = connect(sim, tenant, monkeypatch)
    with pytest.raises(GraphError) as caught:
        client.get("/organization")
    assert caught.value.status == 429 and waits == [0.01] * 5  # six attempts, five waits between them
    assert client.stats.retries == 5 and client.stats.throttled == 6


def test_a_client_with_its_defaults_waits_up_to_two_minutes(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], faults="429=1,retry_after=60.5")
    client, _, waits = connect(sim, tenant, monkeypatch)
    with pytest.raises(GraphError):
        client.get("/organization")
    assert waits == [60.5]  # a second wait would make 121 s, over the 120 s budget
    sim = sim_factory([tenant], faults="429=1,retry_after=60")
    client, _, waits = connect(sim, tenant, monkeypatch)
    with pytest.raises(GraphError):
        client.get("/organization")
    assert waits == [60.0, 60.0]  # exactly 120 s is within it


@pytest.mark.parametrize("attempts", [1, 0, -3])
def test_one_attempt_is_the_least_a_client_makes(sim_factory, monkeypatch, tenant, attempts: int) -> None:
    sim = sim_factory([tenant], faults="429=1,retry_after=0.01")
    client, _, waits = connect(sim, tenant, monkeypatch, max_attempts=attempts)
    with pytest.raises(GraphError):
        client.get("/organization")
    assert waits == [] and client.stats.requests == {"directory": 1}


def test_an_answer_slower_than_the_timeout_is_a_connection_fault(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch)
    client.get("/organization")  # the token is cached now
    sim = sim_factory([tenant], faults="latency=1.5")
    slow, _, waits = connect(sim, tenant, monkeypatch, timeout=0.3, max_attempts=2)
    with pytest.raises(GraphError) as caught:
        slow.get("/organization")
    assert caught.value.code == "ConnectionError" and "Timeout" in caught.value.message
    assert waits == [0.5]


def test_a_base_url_with_a_trailing_slash_reaches_the_same_paths(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    slashed = GraphClient(client.base_url + "/", token, verify=str(sim.ca_path))  # type: ignore[arg-type]
    assert slashed.base_url == client.base_url
    assert slashed.get("/organization")["value"] and slashed.get("organization")["value"]
    assert slashed.stats.requests == {"directory": 2}


def test_a_ca_bundle_given_as_a_path_is_used(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    by_path = GraphClient(client.base_url, token, verify=Path(sim.ca_path))  # type: ignore[arg-type]
    assert by_path.get("/organization")["value"]


def test_a_client_without_a_ca_setting_still_verifies_certificates(sim_factory, monkeypatch, tenant) -> None:
    import certifi

    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    client.get("/organization")  # the token is cached now
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # public CAs only: not the simulator's
    unconfigured = GraphClient(client.base_url, token, sleep=lambda s: None)  # type: ignore[arg-type]
    with pytest.raises(GraphError) as caught:
        unconfigured.get("/organization")
    error = caught.value
    host = client.base_url.split("/")[2]
    assert (error.status, error.code) == (0, "TLSError")
    assert error.message.startswith(f"{host} presented a certificate this machine does not trust (certificate verify")
    assert error.message.endswith(
        "). If a TLS-inspecting proxy is in the way, set audit.ca_bundle to its CA certificates"
    )


def test_without_a_configured_proxy_the_https_proxy_variable_is_honoured(sim_factory, monkeypatch, tenant, caplog):
    import socket

    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    sim = sim_factory([tenant])
    client, _, _ = connect(sim, tenant, monkeypatch, max_attempts=1)
    client.get("/organization")  # the token is cached now; only Graph goes through the proxy below
    with socket.socket() as sock:  # a proxy address nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.DEBUG, logger="audit"), pytest.raises(GraphError) as caught:
        client.get("/organization")
    assert caught.value.code == "ConnectionError" and caught.value.message.startswith("ProxyError: ")
    assert "GET /v1.0/organization failed: ProxyError (attempt 1)" in [r.getMessage() for r in caplog.records]


def test_a_next_link_to_another_host_is_refused_with_both_origins_named(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], faults="next_link_base=https://127.0.0.1:9")  # never contacted
    client, _, _ = connect(sim, tenant, monkeypatch)
    pages = client.iter_pages("/users", params={"$select": "id", "$top": 10})
    assert len(next(pages)) == 10
    with pytest.raises(GraphError) as caught:
        next(pages)
    error = caught.value
    assert (error.status, error.code) == (200, "UntrustedNextLink")  # the page itself was a 200
    assert error.message == (
        f"the @odata.nextLink points at https://127.0.0.1:9, not at Graph ({origin(client.base_url)}); "
        "it was not followed, so the access token was not sent there"
    )


def test_a_url_outside_graph_is_refused_before_anything_is_sent(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant])
    client, token, _ = connect(sim, tenant, monkeypatch)
    with pytest.raises(GraphError) as caught:
        client.get("https://graph.example.net/v1.0/users")
    error = caught.value
    assert (error.status, error.code) == (0, "UntrustedUrl")
    assert error.message == "https://graph.example.net:443 is not the Graph endpoint; the token was not sent"
    assert token.uses == [] and client.stats.requests == {}


def test_each_refused_token_is_logged_as_replaced(sim_factory, monkeypatch, tenant, caplog) -> None:
    sim = sim_factory([tenant], faults="token_ttl=0")  # every token is refused as expired
    client, _, _ = connect(sim, tenant, monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="audit"), pytest.raises(GraphError):
        client.get("/organization")
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert lines == ["access token rejected as expired; fetched a new one"] * 3
    assert client.stats.token_refreshes == 3


def test_a_whole_batch_left_throttled_gives_each_item_that_answer(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], faults="429=1,retry_after=0.25")
    client, _, waits = connect(sim, tenant, monkeypatch, max_attempts=2)
    answers = client.send_batch(mailbox_settings(tenant, 3))
    assert waits == [0.25]  # the $batch POST itself was tried twice
    assert sorted(answers) == sorted(u["id"] for u in tenant["users"][:3])
    for item in answers.values():
        error = item.error()
        assert item.status == 429 and error is not None
        assert (error.code, error.message) == ("TooManyRequests", "Please retry again later.")


def test_a_batch_answer_without_responses_leaves_every_item_to_try_again(sim_factory, monkeypatch, tenant) -> None:
    sim = sim_factory([tenant], faults="no_value=1,retry_after=0")
    client, _, _ = connect(sim, tenant, monkeypatch, max_attempts=2)
    answers = client.send_batch(mailbox_settings(tenant, 2))
    for item in answers.values():
        error = item.error()
        assert item.status == 503 and error is not None
        assert (error.code, error.message) == ("InvalidResponse", "the batch answer has no 'responses' list")


def test_a_garbled_batch_answer_keeps_the_items_it_can_read_and_asks_again_for_the_rest(
    sim_factory, monkeypatch, tenant
) -> None:
    # Graph answers each item with an id, a numeric status, headers and a body (learn.microsoft.com/graph/
    # json-batching); a faulty gateway may pass on entries that answer no request, lose one or mangle one.
    sim = sim_factory([tenant], faults="batch_garble=1")
    client, _, _ = connect(sim, tenant, monkeypatch)
    requests_ = mailbox_settings(tenant, 4)
    answers = client.send_batch(requests_)
    assert sorted(answers) == sorted(r["id"] for r in requests_)  # the strays answer nothing we asked
    statuses = sorted(a.status for a in answers.values())
    assert statuses[0] == 0 and statuses[-1] == 503 and all(s in (200, 404) for s in statuses[1:3])
    mangled = next(a for a in answers.values() if a.status == 0)  # status as text: never delivered
    assert (mangled.headers, mangled.body) == ({}, None)
    lost = next(a for a in answers.values() if a.status == 503)
    assert lost.id in answers and lost.headers == {}
    assert lost.body == {"error": {"code": "InvalidResponse", "message": "missing from the batch answer"}}
    error = lost.error()
    assert error is not None and (error.code, error.message) == ("InvalidResponse", "missing from the batch answer")


def test_a_tls_failure_other_than_an_untrusted_certificate_says_the_handshake_failed(
    sim_factory, monkeypatch, tenant
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sim = sim_factory([tenant])
    _, token, _ = connect(sim, tenant, monkeypatch)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # speaks HTTP, not TLS
    with serving(plain) as host:
        client = GraphClient(f"https://{host}/v1.0", token, verify=str(sim.ca_path))  # type: ignore[arg-type]
        with pytest.raises(GraphError) as caught:
            client.get("/organization")
    assert (caught.value.code, caught.value.message) == (
        "TLSError",
        f"the TLS handshake with {host} failed ([SSL: WRONG_VERSION_NUMBER] wrong version number); check that "
        "this address speaks HTTPS and that no proxy in between breaks TLS",
    )  # not blamed on a certificate: the server sent none


def test_a_tls_failure_without_an_ssl_reason_is_named_by_its_exception_type() -> None:
    # A handshake cut off by the other end carries no "[SSL: ...]" reason: the exception's type stands in.
    text = tls_failure("graph.example:443", ConnectionResetError(104, "Connection reset by peer"))
    assert text.startswith("the TLS handshake with graph.example:443 failed (ConnectionResetError); ")
