"""read_ahead: the next page of a listing is fetched while the caller works on the one it has."""

from __future__ import annotations

import threading

import pytest

from audit.graph import GraphError, read_ahead


def test_pages_come_in_order_and_the_next_is_asked_for_before_the_caller_is_done():
    asked: list[threading.Event] = [threading.Event() for _ in range(3)]

    def pages():
        for n in range(3):
            asked[n].set()
            yield [{"id": str(n)}]

    seen = []
    for page in read_ahead(pages()):
        n = int(page[0]["id"])
        seen.append(n)
        if n < 2:  # the caller is still on page n: page n + 1 is already being read
            assert asked[n + 1].wait(5)
    assert seen == [0, 1, 2]


def test_an_empty_page_is_a_page_and_a_failure_reaches_the_caller():
    def pages():
        yield []
        yield [{"id": "1"}]
        raise GraphError(503, "ServiceUnavailable", "page 3 could not be read")

    seen = []
    with pytest.raises(GraphError, match="page 3 could not be read"):
        for page in read_ahead(pages()):
            seen.append(page)
    assert seen == [[], [{"id": "1"}]]
