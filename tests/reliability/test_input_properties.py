"""Any bytes handed to the CSV readers give a result or an InputError; never another exception.

The config loader has its own property tests in tests/test_config.py (mutated configs, any text);
here it also gets arbitrary bytes, since admins hand us files, not strings.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.config import Config, ConfigError, load_config
from audit.csvin import InputError, read_recipients, read_table
from audit.triage import read_error_log

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Pieces that CSV files are made of, so that generated files look like CSV often enough to reach the
# parser's deeper paths (quotes, delimiters, header names the readers look for).
PIECES = st.sampled_from(
    [
        "address",
        "Mailbox",
        "Remediation Error",
        "Error",
        "UPN",
        "email",
        ",",
        ";",
        '"',
        '""',
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "\ufeff",
        "a@contoso.com",
        "smtp:B@Fabrikam.com",
        "Ann <ann@x.example>",
        "Resource is Not Found",
        "The Requested User is Invalid",
        '=HYPERLINK("x")',
        "\x00",
        "é",
        "\u2028",
    ]
)
csv_text = st.lists(PIECES | st.text(max_size=12), max_size=40).map("".join)
csv_bytes = st.one_of(
    csv_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    csv_text.map(lambda t: t.encode("utf-16")),
    st.binary(max_size=300),
    st.builds(
        lambda head, n: head + b'"' + b"x" * n,
        st.sampled_from([b"address\n", b"Mailbox,Error\n"]),
        st.sampled_from([10, 140_000]),
    ),  # a runaway quote: one field over csv's size limit
)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    return path


@FAST
@given(data=csv_bytes)
def test_recipients_reader_gives_addresses_or_input_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        addresses = read_recipients(path)
    except InputError as err:
        assert str(err).startswith(f"{path}: ")
    else:
        assert addresses and all(isinstance(a, str) and a for a in addresses)


@FAST
@given(data=csv_bytes)
def test_error_log_reader_gives_columns_or_input_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        log = read_error_log(path)
    except InputError as err:
        assert str(err).startswith(f"{path}: ")
    else:
        assert log.address_column in log.table.header and log.error_column in log.table.header
        assert log.table.rows or log.table.bad_rows


@FAST
@given(data=csv_bytes)
def test_table_rows_always_have_every_header_key(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        table = read_table(path)
    except InputError:
        return
    assert all(set(row) == set(table.header) for row in table.rows)
    assert all(number >= 2 for number, _ in table.bad_rows)


@FAST
@given(data=st.binary(max_size=400) | csv_text.map(lambda t: ("[audit]\n" + t).encode("utf-8", "surrogatepass")))
def test_config_loader_on_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "any.toml"
    path.write_bytes(data)
    try:
        result = load_config(path)
    except ConfigError as err:
        assert str(err).startswith(f"{path}")
    else:
        assert isinstance(result, Config)
