"""A small Microsoft Graph client on requests: retries, throttling, paging and JSON batching.

Transport problems become GraphError here, at the boundary. Waiting goes through the injected `sleep`
so tests can check what was waited without waiting.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from audit import logs

log = logging.getLogger("audit")

RETRY_STATUSES = frozenset({429, 503, 504})
BATCH_LIMIT = 20  # Graph accepts at most 20 requests in one $batch
BACKOFF_BASE = 1.0  # seconds; the n-th retry waits up to BACKOFF_BASE * 2**(n-1), capped
BACKOFF_CAP = 60.0
CONNECTION_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.Timeout,
)


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


class GraphError(Exception):
    """An error answer from Graph (or no usable answer: status 0 for a connection failure)."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(status, code, message, request_id)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message} (request-id {self.request_id})"


@dataclass(frozen=True)
class BatchItem:
    """One answer inside a $batch response."""

    id: str
    status: int
    headers: dict[str, str]
    body: dict | None

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def error(self) -> GraphError | None:
        """The item's error as a GraphError, or None when it succeeded (status 0: never delivered)."""
        if 200 <= self.status < 400:
            return None
        return parse_error(self.status, self.body, self.headers)


@dataclass
class GraphStats:
    """Counters of what a client sent. Safe to update from several threads.

    requests: by class ("directory", "outlook", "reports", "batch", "other"); a $batch counts once as
    "batch" and each request inside it also counts under its own class. batch_items: only the latter.
    """

    requests: dict[str, int] = field(default_factory=dict)
    batch_items: dict[str, int] = field(default_factory=dict)
    throttled: int = 0  # 429 answers received, inside batches too
    retries: int = 0  # requests (or batch items) sent again
    token_refreshes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, n: int = 1, *, in_batch: bool = False) -> None:
        with self._lock:
            self.requests[kind] = self.requests.get(kind, 0) + n
            if in_batch:
                self.batch_items[kind] = self.batch_items.get(kind, 0) + n

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "batch_items": dict(self.batch_items),
                "throttled": self.throttled,
                "retries": self.retries,
                "token_refreshes": self.token_refreshes,
            }


# ---------------------------------------------------------------------------------------------------
# Pure helpers


def odata_string(value: str) -> str:
    """A $filter string literal: the value in single quotes, each quote inside written twice (OData 4.01 URL
    Conventions). Every value put into a $filter goes through here."""
    return "'" + str(value).replace("'", "''") + "'"


def header_value(headers: dict[str, str] | None, name: str) -> str | None:
    """Look a header up ignoring case (batch item headers come as a plain dict)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: seconds (maybe fractional) or an HTTP date.

    None when absent or unreadable; never negative. `now` is a POSIX time, for the date form.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(
    attempt: int, rng: Callable[[], float], base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return rng() * ceiling


def _lower_keys(obj: Any) -> Any:
    return {str(k).lower(): v for k, v in obj.items()} if isinstance(obj, dict) else {}


def parse_error(status: int, body: Any, headers: dict[str, str] | None = None) -> GraphError:
    """Turn a Graph error answer (envelope parsed case-insensitively) into a GraphError."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body) if body else None
        except ValueError:
            body = None
    error = _lower_keys(_lower_keys(body).get("error"))
    inner = _lower_keys(error.get("innererror"))
    code = error.get("code") if isinstance(error.get("code"), str) else ""
    if not code:
        inner_code = inner.get("code")
        code = inner_code if isinstance(inner_code, str) and not inner_code.isdigit() else ""
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    request_id = (
        inner.get("request-id")
        or inner.get("client-request-id")
        or header_value(headers, "request-id")
        or header_value(headers, "client-request-id")
    )
    return GraphError(
        status,
        code or f"HTTP{status}",
        message or "no error message in the answer",
        str(request_id) if request_id else None,
    )


def origin(url: str) -> str:
    """scheme://host:port of a URL, the part that says where a request goes (never a path or a query)."""
    split = urlsplit(url)
    try:
        port = split.port
    except ValueError:
        port = None
    scheme = split.scheme.lower()
    port = port or {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{(split.hostname or '').lower()}" + (f":{port}" if port else "")


def same_origin(url: str, base: str) -> bool:
    """Whether url goes to the same scheme, host and port as base (default ports filled in)."""
    return bool(urlsplit(url).hostname) and origin(url) == origin(base)


def request_class(path: str) -> str:
    """Which throttling family a Graph path belongs to (path without the version prefix)."""
    p = path.split("?", 1)[0].lower()
    if p.rstrip("/").endswith("/$batch") or p == "$batch":
        return "batch"
    if "/reports/" in p or p.startswith("reports/"):
        return "reports"
    # No /me: app-only tokens are refused there, 400 "/me request is only valid with delegated authentication
    # flow." (github.com/microsoftgraph/msgraph-sdk-php/issues/1163).
    if p.startswith(("/users/", "users/")) and any(
        part in p for part in ("/mailboxsettings", "/mailfolders", "/sendmail", "/messages")
    ):
        return "outlook"
    return "directory"


def tls_failure(host: str, exc: Exception) -> str:
    """What a failed TLS handshake means: an untrusted certificate (often a TLS-inspecting proxy), or not
    TLS at all (a plain-HTTP port, a proxy that breaks it). `host`: the host and port, or a longer name of
    the other end ("the sign-in service at ...")."""
    text = str(exc)
    untrusted = re.search(r"certificate verify failed[^'\")(]*", text)
    if untrusted:
        return (
            f"{host} presented a certificate this machine does not trust ({untrusted.group(0).strip()}). "
            "If a TLS-inspecting proxy is in the way, set audit.ca_bundle to its CA certificates"
        )
    ssl = re.search(r"\[SSL: \w+\][^'\")(]*", text)
    reason = ssl.group(0).strip() if ssl else type(exc).__name__
    return (
        f"the TLS handshake with {host} failed ({reason}); check that this address speaks HTTPS and that no "
        "proxy in between breaks TLS"
    )


def read_ahead(pages: Iterator[list[dict]]) -> Iterator[list[dict]]:
    """The pages of `pages`, the next one fetched in a thread of its own while the caller works on this one.

    A page's round trip and Graph's time for it are most of a listing; the caller's work on the page (turning
    999 users into records, handing them to the probes) then costs no time of its own. A failure to read a page
    is raised here, in the caller's thread.
    """
    done: list[dict] = []  # no page is this object, so it marks the end
    pool = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="read-ahead", initializer=logs.adopt, initargs=(logs.current(),)
    )
    try:
        future = pool.submit(next, pages, done)
        while (page := future.result()) is not done:
            future = pool.submit(next, pages, done)
            yield page
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a caller that stops early does not wait for a page


# ---------------------------------------------------------------------------------------------------
# Outlook's concurrency cap, learnt while probing

DOCUMENTED_OUTLOOK_CONCURRENCY = 4  # learn.microsoft.com/graph/throttling-limits#outlook-service-limits
BATCH_OUTLOOK_PARALLEL = 4  # Outlook items of one $batch Graph runs at once (the same page)


def is_concurrency_refusal(status: int, body: dict | None) -> bool:
    """A 429 from Outlook's concurrency cap: code ApplicationThrottled, "Application is over its
    MailboxConcurrency limit." (as quoted in github.com/alcionai/corso/issues/3695). Other 429s (the
    global rate, random throttling) say nothing about how many calls may be in flight."""
    error = _lower_keys(_lower_keys(body).get("error"))
    return status == 429 and (
        error.get("code") == "ApplicationThrottled" or "concurrency" in str(error.get("message") or "").lower()
    )


class OutlookLimiter:
    """How many Outlook operations one app may have in flight, learnt during the run.

    Graph documents 4 concurrent Outlook requests per app; an older revision of the same page, and the
    error's name ("MailboxConcurrency"), count 4 per app and mailbox. Nothing tells a client which one a
    tenant enforces today, so: start at the documented 4; after a batch that took the last free slot
    comes back without a refusal from the cap, allow one batch more, up to `ceiling`; at the first
    refusal go back to the last level Graph accepted and stay there. A refusal after that (someone else
    uses the same budget) lowers the level; it never grows again, so there is no saw-tooth of refusals.

    Whether a $batch runs its Outlook items beyond 4 later ("queue", the current throttling page) or
    answers them 429 ("refuse", older reports) is learnt from the first batch of more than 4 items, sent
    while nothing else is in flight. One limiter serves every tenant audited with the same app, as the
    cap is per app.
    """

    def __init__(self, ceiling: int = 16) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = min(DOCUMENTED_OUTLOOK_CONCURRENCY, self.ceiling)
        self.accepted = 0  # the highest level a batch taking the last slot came back from unrefused
        self.settled = False  # a refusal was seen (or the ceiling reached): the level never grows again
        self.batch_mode: str | None = None  # "queue" | "refuse", once a batch has shown it
        self.refusals = 0  # 429s from the cap (not those of the batch that showed a refusing batch mode)
        self.in_use = 0
        self._testing = False
        self._lock = threading.Lock()
        self._waiting: list[Callable[[], None]] = []

    def parallel(self) -> bool:
        """Parallel batches are possible: Graph queues batch items (or it is yet to be learnt). Never
        with a ceiling of 4 or less: a batch whose items all start at once would exceed it."""
        return (
            self.batch_mode in (None, "queue")
            and self.limit >= BATCH_OUTLOOK_PARALLEL
            and self.ceiling > BATCH_OUTLOOK_PARALLEL
        )

    def try_acquire(self, items: int, wake: Callable[[], None], sequential: bool) -> tuple[int, bool, int, bool] | None:
        """Slots for a batch of up to `items` probes: (taken, full, level, parallel).

        While the cap is being learnt, and where the caller does not want a `sequential` batch, a batch
        is parallel where Graph queues batch items: it takes min(4, items) slots (every slot, for the
        batch that learns the batch mode). Otherwise it is sequential and takes 1 slot: once the cap is
        known a sequential batch pays one round trip per 20 probes on each slot, where a parallel one
        leaves Outlook idle for a round trip every 20 / 4 probes. full: no slot was left over; level:
        the limit they were taken under. None when they are not free; `wake` is called at the next
        release."""
        with self._lock:
            parallel = self.parallel() and not (sequential and self.settled)
            if self.batch_mode is None and self.parallel():
                if self._testing or self.in_use:
                    self._waiting.append(wake)
                    return None
                self._testing = True
                self.in_use = self.limit
                return self.limit, True, self.limit, True
            cost = min(BATCH_OUTLOOK_PARALLEL, items, self.limit) if parallel else 1
            if self.in_use + cost > self.limit:
                self._waiting.append(wake)
                return None
            self.in_use += cost
            return cost, self.in_use == self.limit, self.limit, parallel

    def release(self, slots: tuple[int, bool, int, bool], *, refused: int, items: int) -> None:
        """Give the slots back with what the batch saw: `refused` of its `items` answered 429 by the cap."""
        taken, full, level, _ = slots
        with self._lock:
            self.in_use -= taken
            if self._testing:
                self._testing = False
                if items > taken:  # only a batch larger than the slots it holds shows the mode
                    self.batch_mode = "refuse" if refused else "queue"
                    refused = 0  # items a refusing batch could not run say nothing about the cap
            self.refusals += refused
            if refused and level > self.limit:
                pass  # sent under a level already given up: this refusal was answered
            elif refused and not self.settled:
                self.limit = max(1, self.accepted or self.limit - 1)
                self.settled = True
            elif refused:
                self.limit = max(1, self.limit - 1)  # someone else uses the budget: one slot less
            elif full and not self.settled and self.batch_mode is not None and level == self.limit:
                self.accepted = max(self.accepted, self.limit)
                self.limit = min(self.ceiling, self.limit + BATCH_OUTLOOK_PARALLEL)  # one parallel batch more
                self.settled = self.limit == self.accepted
            waiting, self._waiting = self._waiting, []
        for wake in waiting:
            wake()

    def describe(self) -> str:
        """What was learnt, for the log."""
        if self.refusals and self.accepted:
            level = f"Graph refused more than {self.limit} at once"
        elif self.refusals:
            level = f"Graph kept refusing, lowered to {self.limit}"
        elif self.limit >= self.ceiling:
            level = f"the configured ceiling (audit.max_outlook_concurrency = {self.ceiling}); Graph refused none"
        else:
            level = "Graph refused none"
        mode = {
            "queue": "$batch items beyond 4 wait their turn",
            "refuse": "$batch items beyond 4 in flight are refused, so probes go in sequential batches",
        }.get(self.batch_mode or "", "no $batch was large enough to show how Graph runs batch items")
        return f"up to {self.limit} Outlook probes in flight ({level}); {mode}"


class _Fault(Exception):
    """A retryable failure, with how long the server asked us to wait (if it said)."""

    def __init__(self, error: GraphError, retry_after: float | None):
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class GraphClient:
    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        verify: str | bool = True,
        proxy: str | None = None,
        timeout: float = 30,
        max_attempts: int = 6,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.verify = str(verify) if not isinstance(verify, bool) else verify
        self.proxies = {"http": proxy, "https": proxy} if proxy else None
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.wall = wall
        self.stats = GraphStats()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._refresh_lock = threading.Lock()

    # ---- public API -----------------------------------------------------------------------------

    def get(self, path_or_url: str, params: dict | None = None, headers: dict | None = None) -> dict:
        return self._call("GET", path_or_url, params=params, headers=headers, want="json")

    def get_text(self, path_or_url: str, params: dict | None = None, headers: dict | None = None) -> str:
        """A plain-text answer: $count, or a CSV report (redirects are followed)."""
        return self._call("GET", path_or_url, params=params, headers=headers, want="text")

    def get_report(self, path: str) -> str:
        """A Graph report as text. Graph answers 302 with a pre-authenticated download URL on another
        host; that URL is fetched without our token, which must not leave Graph."""
        answer = self._call("GET", path, want="redirect")
        if not answer.startswith(("https://", "http://")):
            return answer  # answered directly, without a redirect
        return self._call("GET", answer, want="text", auth=False)

    def iter_pages(self, path: str, params: dict | None = None) -> Iterator[list[dict]]:
        """Yield each page's `value`; the next page is exactly the `@odata.nextLink` Graph gave."""
        url: str | None = path
        page_params = params
        while url:
            page = self._call("GET", url, params=page_params, want="collection")
            yield page["value"]
            link = page.get("@odata.nextLink")
            url = link if isinstance(link, str) and link else None
            page_params = None
            # The next page is fetched by "sending the URL value of the @odata.nextLink property to Microsoft
            # Graph" (learn.microsoft.com/graph/paging): a link to any other origin is not Graph's to give.
            if url and not same_origin(self._url(url), self.base_url):
                raise GraphError(
                    200,
                    "UntrustedNextLink",
                    f"the @odata.nextLink points at {origin(url)}, not at Graph ({origin(self.base_url)}); "
                    "it was not followed, so the access token was not sent there",
                )

    def post(self, path: str, body: dict) -> dict | None:
        return self._call("POST", path, json_body=body, want="optional")

    def close(self) -> None:
        self.session.close()

    def batch(
        self, requests_: Sequence[dict], *, in_flight: int = 1, per_batch: int = BATCH_LIMIT
    ) -> dict[str, BatchItem]:
        """Send requests through /$batch, `per_batch` (at most 20) at a time, `in_flight` batches at once.

        Items answered 429/503/504 are sent again on their own in a later batch after the longest
        Retry-After among them, while attempts and the wait budget last. Returns the final answer per id;
        an item can still be throttled when the budget ran out, or have status 0 when its batch could not
        be delivered at all. Other failures of a whole batch (401, 403, TLS) raise GraphError.
        """
        by_id: dict[str, dict] = {}
        seen: set[str] = set()  # Graph compares ids without regard to case
        for req in requests_:
            rid = str(req["id"])
            if rid.lower() in seen:
                raise ValueError(f"duplicate batch request id {rid!r}")
            seen.add(rid.lower())
            by_id[rid] = dict(req, id=rid)
        results: dict[str, BatchItem] = {}
        attempts = dict.fromkeys(by_id, 0)
        pending = list(by_id)
        waited = 0.0
        round_no = 0
        while pending:
            round_no += 1
            size = max(1, min(per_batch, BATCH_LIMIT))
            chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
            for rid in pending:
                attempts[rid] += 1
            if round_no > 1:
                self.stats.add("retries", len(pending))
            workers = max(1, min(in_flight, len(chunks)))
            if workers == 1:
                answers = [self.send_batch([by_id[r] for r in chunk]) for chunk in chunks]
            else:
                with ThreadPoolExecutor(
                    max_workers=workers,
                    thread_name_prefix="graph-batch",
                    initializer=logs.adopt,
                    initargs=(logs.current(),),
                ) as pool:
                    answers = list(pool.map(lambda c: self.send_batch([by_id[r] for r in c]), chunks))
            again: list[str] = []
            delay = 0.0
            for answer in answers:
                for item in answer.values():
                    results[item.id] = item
                    if item.status in RETRY_STATUSES and attempts[item.id] < self.max_attempts:
                        again.append(item.id)
                        wait = parse_retry_after(item.header("Retry-After"), self.wall())
                        if wait is None:
                            wait = backoff_delay(attempts[item.id], self.rng)
                        delay = max(delay, wait)
            if not again:
                break
            if waited + delay > self.max_wait:
                log.debug("batch: %d item(s) still throttled, wait budget spent", len(again))
                break
            log.debug("batch: re-sending %d item(s) after %.2fs", len(again), delay)
            self.sleep(delay)
            waited += delay
            pending = again
        return results

    # ---- internals ------------------------------------------------------------------------------

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _kind(self, url: str) -> str:
        if not url.startswith(self.base_url + "/"):
            return "other"
        return request_class(url[len(self.base_url) :])

    def send_batch(self, items: list[dict]) -> dict[str, BatchItem]:
        """One POST /$batch; the whole batch is retried on 429/503/504/424 or an unreadable answer."""
        body = {"requests": [dict(item) for item in items]}
        for item in items:
            self.stats.count(request_class(str(item.get("url", ""))), in_batch=True)
        try:
            answer = self._call("POST", "/$batch", json_body=body, want="batch", extra_retry=frozenset({424}))
        except GraphError as exc:
            unreadable = exc.code == "InvalidResponse"  # kept answering 200 with a body that is no batch
            if exc.status not in RETRY_STATUSES | {424} and exc.code != "ConnectionError" and not unreadable:
                raise
            # The batch as a whole stayed throttled or unreachable: every item gets that answer
            # (status 0 for a connection that kept failing), so the caller can report them unassessed.
            # An unreadable answer is a transient fault like an item left out below: 503, sent again.
            envelope = {"error": {"code": exc.code, "message": exc.message}}
            status = 503 if unreadable else exc.status
            return {i["id"]: BatchItem(i["id"], status, {}, envelope) for i in items}
        out: dict[str, BatchItem] = {}
        wanted = {i["id"].lower(): i["id"] for i in items}
        for raw in answer["responses"]:
            if not isinstance(raw, dict) or str(raw.get("id", "")).lower() not in wanted:
                continue
            rid = wanted[str(raw["id"]).lower()]
            headers = raw.get("headers") if isinstance(raw.get("headers"), dict) else {}
            status = raw.get("status") if isinstance(raw.get("status"), int) else 0
            item_body = raw.get("body") if isinstance(raw.get("body"), dict) else None
            out[rid] = BatchItem(rid, status, {str(k): str(v) for k, v in headers.items()}, item_body)
            if status == 429:
                self.stats.add("throttled")
        for rid in wanted.values():
            if rid not in out:  # Graph left it out: treat as a transient fault, so it is sent again
                missing = {"error": {"code": "InvalidResponse", "message": "missing from the batch answer"}}
                out[rid] = BatchItem(rid, 503, {}, missing)
        return out

    def _call(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        headers: dict | None = None,
        want: str,
        extra_retry: frozenset[int] = frozenset(),
        auth: bool = True,
    ) -> Any:
        url = self._url(path_or_url)
        if auth and not same_origin(url, self.base_url):  # the bearer token goes to Graph and nowhere else
            raise GraphError(0, "UntrustedUrl", f"{origin(url)} is not the Graph endpoint; the token was not sent")
        kind = self._kind(url)
        # What the debug log names: the path for Graph; only the host for a pre-authenticated download
        # URL (no token of ours), whose path and query are themselves the credential.
        path = urlsplit(url).path if auth else urlsplit(url).netloc.rpartition("@")[2]
        retry_on = RETRY_STATUSES | extra_retry
        start = self.clock()
        waited = 0.0
        attempt = 0
        refused: set[str] = set()  # tokens Graph refused as expired during this call
        while True:
            attempt += 1
            access_token = self._bearer() if auth else ""
            send_headers = {"Authorization": f"Bearer {access_token}"} if auth else {}
            send_headers["Accept"] = "application/json"
            send_headers.update(headers or {})
            self.stats.count(kind)
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=send_headers,
                    timeout=self.timeout,
                    verify=self.verify,
                    proxies=self.proxies,
                    allow_redirects=want != "redirect",
                )
            except requests.exceptions.SSLError as exc:
                host = urlsplit(url).netloc.rpartition("@")[2]
                raise GraphError(0, "TLSError", tls_failure(host, exc)) from exc
            except CONNECTION_ERRORS as exc:
                log.debug("%s %s failed: %s (attempt %d)", method, path, type(exc).__name__, attempt)
                # requests names the whole URL in its text: for a download, name only the host and the error.
                text = f"{type(exc).__name__}: {exc}" if auth else f"{type(exc).__name__} downloading from {path}"
                fault = _Fault(GraphError(0, "ConnectionError", text), None)
            else:
                request_id = resp.headers.get("request-id") or resp.headers.get("client-request-id")
                log.debug("%s %s %s request-id=%s attempt=%d", method, path, resp.status_code, request_id, attempt)
                try:
                    return self._accept(resp, want, retry_on)
                except _Fault as f:
                    fault = f
                except GraphError as exc:
                    # Refresh once per refused token: a call that waits out long Retry-Afters can outlive
                    # the fresh token too; a token refused at once is not refreshed for ever (at most 3).
                    if (
                        exc.status == 401
                        and exc.code == "InvalidAuthenticationToken"
                        and auth
                        and access_token not in refused
                        and len(refused) < 3
                    ):
                        refused.add(access_token)
                        attempt -= 1  # a token refresh is not a retry of a fault
                        self._bearer(functools.partial(self._refresh, access_token))
                        continue
                    raise
            if fault.error.status == 429:
                self.stats.add("throttled")
            delay = fault.retry_after
            if delay is None:
                delay = backoff_delay(attempt, self.rng)
            spent = max(waited, self.clock() - start)
            if attempt >= self.max_attempts or spent + delay > self.max_wait:
                log.debug("%s %s: giving up after %d attempt(s): %s", method, path, attempt, fault.error)
                raise fault.error
            self.stats.add("retries")
            self.sleep(delay)
            waited += delay

    def _bearer(self, get: Callable[[], Any] | None = None) -> Any:
        """A token (or a refresh, `get`). Signing in again failing mid-run (the sign-in service gone, the
        secret revoked) fails this Graph call, so the tenant is partial with the reason, not aborted."""
        from audit.auth import AuthError

        try:
            return (get or self.token.token)()
        except AuthError as err:
            raise GraphError(0, "SignInFailed", f"a new access token could not be obtained: {err}") from err

    def _refresh(self, failed_token: str) -> None:
        """Get a new token once, even when several threads saw the old one rejected at the same time."""
        with self._refresh_lock:
            if self.token.token() == failed_token:
                self.token.invalidate()
                self.token.token()
                self.stats.add("token_refreshes")
                log.debug("access token rejected as expired; fetched a new one")

    def _accept(self, resp: requests.Response, want: str, retry_on: frozenset[int]) -> Any:
        status = resp.status_code
        headers = dict(resp.headers)
        if status in retry_on:
            wait = parse_retry_after(resp.headers.get("Retry-After"), self.wall())
            raise _Fault(parse_error(status, resp.content, headers), wait)
        if status >= 400:
            raise parse_error(status, resp.content, headers)
        if want == "redirect" and 300 <= status < 400:
            location = resp.headers.get("Location")
            if not location:
                raise GraphError(status, "InvalidResponse", "a redirect without a Location header")
            return urljoin(resp.url, location)
        if want in ("text", "redirect"):
            return resp.content.decode("utf-8-sig", errors="replace")  # Graph text is UTF-8, CSVs carry a BOM
        if want == "optional" and not resp.content.strip():
            return None
        request_id = resp.headers.get("request-id")
        try:
            data = resp.json()
        except ValueError:
            data = None
        problem = None
        if not isinstance(data, dict):
            problem = "the answer is not a JSON object"
        elif want == "collection" and not isinstance(data.get("value"), list):
            problem = "the collection page has no 'value' list"
        elif want == "batch" and not isinstance(data.get("responses"), list):
            problem = "the batch answer has no 'responses' list"
        if problem:
            error = GraphError(status, "InvalidResponse", problem, request_id)
            raise _Fault(error, parse_retry_after(resp.headers.get("Retry-After"), self.wall()))
        return data
