"""One rule for the mailbox column of every list an admin hands in: recipients and remediation error logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.csvin import ADDRESS_HINT, InputError, read_recipients
from audit.triage import read_error_log


@pytest.mark.parametrize(
    "header", ["address", "Mailbox", "EMAIL", "UPN", "User Principal Name", "user_principal_name", "Recipient Email"]
)
def test_recipients_and_error_logs_accept_the_same_column_names(tmp_path: Path, header: str) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text(f"{header},Remediation Error\nann@contoso.com,Resource is Not Found\n", encoding="utf-8")
    assert read_recipients(listed) == ["ann@contoso.com"]
    assert read_error_log(listed).address_column == header


def test_an_unnamed_column_of_addresses_is_found_by_content_in_both(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("Who,Contact,Remediation Error\nAnn,ann@contoso.com,Resource is Not Found\n", encoding="utf-8")
    assert read_recipients(listed) == ["ann@contoso.com"]
    assert read_error_log(listed).address_column == "Contact"


def test_both_refuse_a_list_without_addresses_with_the_same_advice(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("Name,Remediation Error\nAnn,Resource is Not Found\n", encoding="utf-8")
    for reader in (read_recipients, read_error_log):
        with pytest.raises(InputError) as err:
            reader(listed)
        assert str(err.value) == f"{listed}: no address column among 'Name', 'Remediation Error'. {ADDRESS_HINT}"
