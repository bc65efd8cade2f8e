"""What an admin reads when the exceptions file is wrong: the whole message, naming file, entry and key."""

from __future__ import annotations

from datetime import date

import pytest

from audit.report import AcceptedException, ExceptionsError, load_exceptions

ENTRY = 'check_id = "x"\nuser = "a@b.c"\nreason = "r"\nowner = "o"\nexpires = 2099-01-01\n'


def message(tmp_path, text: str | bytes) -> tuple[str, str]:
    path = tmp_path / "exceptions.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ExceptionsError) as err:
        load_exceptions(path)
    return str(err.value), str(path)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            ENTRY + 'colour = "blue"\n',
            "unknown key 'colour'. Allowed keys: check_id, reason, owner, expires, user, tenant.",
        ),
        (
            ENTRY.replace('reason = "r"\n', ""),
            "missing key 'reason'. Every exception needs check_id, reason, owner, expires, and user or tenant.",
        ),
        (ENTRY.replace('check_id = "x"', "check_id = 5"), "key 'check_id' must be a non-empty string."),
        (ENTRY.replace('check_id = "x"', 'check_id = " "'), "key 'check_id' must be a non-empty string."),
        (ENTRY.replace('owner = "o"', 'owner = ""'), "key 'owner' must be a non-empty string."),
        (ENTRY.replace('user = "a@b.c"', 'user = "  "'), "key 'user' must be a non-empty string."),
        (
            ENTRY.replace('user = "a@b.c"\n', ""),
            "missing key 'user' or 'tenant'. Name the user (UPN or object id) or the tenant (name or id) the "
            "exception covers.",
        ),
        (
            ENTRY.replace("2099-01-01", "12"),
            "key 'expires' is not a date (12). Write it as a TOML date, e.g. expires = 2025-12-31.",
        ),
    ],
)
def test_a_bad_entry_is_named_with_its_number_and_key(tmp_path, entry, expected):
    text, path = message(tmp_path, f"[[exception]]\n{ENTRY}\n[[exception]]\n{entry}")
    assert text == f"{path}: exception #2: {expected}"


def test_a_bad_file_is_named_with_what_is_wrong(tmp_path):
    text, path = message(tmp_path, f'zebra = 1\nalpha = "a"\n[[exception]]\n{ENTRY}')
    assert text == f"{path}: unknown top-level key 'alpha'. The file holds only [[exception]] tables."
    text, path = message(tmp_path, 'exception = "none"\n')
    assert text == f"{path}: 'exception' must be an array of tables; write [[exception]]."
    text, path = message(tmp_path, b'[[exception]]\nreason = "caf\xe9"\n')
    assert text.startswith(f"{path}: cannot read the exceptions file: ") and "utf-8" in text and text.endswith(".")


def test_a_folder_given_as_the_file_cannot_be_read(tmp_path):
    with pytest.raises(ExceptionsError) as err:
        load_exceptions(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: cannot read the exceptions file: [Errno 21] Is a directory")


def test_an_exception_describes_its_scope_owner_and_expiry():
    both = AcceptedException("no-exchange-license", "r", "it-ops", date(2099, 1, 31), user="bob@x.com", tenant="x")
    assert both.describe() == "no-exchange-license for bob@x.com in x (owner it-ops, expires 2099-01-31)"
    tenant_only = AcceptedException("domain-not-verified", "r", "it-ops", date(2099, 1, 31), tenant="contoso")
    assert tenant_only.describe() == "domain-not-verified for contoso (owner it-ops, expires 2099-01-31)"
