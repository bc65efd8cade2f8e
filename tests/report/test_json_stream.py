"""The JSON report is written as it is made, never built as one string first, and its bytes do not change."""

from __future__ import annotations

import io

from audit.report.jsonreport import dump, dump_to


def test_the_streamed_report_has_the_bytes_of_the_whole_string():
    data = {
        "schema": 1,
        "findings": [{"display_name": "Zoë Ångström 山田", "evidence": 'quote " and\nnewline', "n": 3, "none": None}],
        "empty": {},
        "list": [],
    }
    fh = io.BytesIO()
    dump_to(fh, data)
    assert fh.getvalue() == dump(data)
    assert not fh.closed  # the file stays its owner's to flush and close
