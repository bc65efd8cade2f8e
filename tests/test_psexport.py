"""PowerShell exports read the way admins produce them (audit.psexport), from documented output.

The Get-ApplicationAccessPolicy object below is the one a public walkthrough printed
(github: a "cloudpilotdev" Graph application access policy guide: ScopeName MyRestrictedSecGroup,
ScopeIdentity MyRestrictedSecGroup20210509121159, ScopeIdentityRaw `<SID>;<group object id>`); the
Identity format matches Example 2 of Microsoft's Get-ApplicationAccessPolicy page
(learn.microsoft.com/powershell/module/exchange/get-applicationaccesspolicy).
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from audit.collect import read_access_policies, scope_object_id
from audit.psexport import flag, parse_export, text

POLICY = {
    "RunspaceId": "21903e33-af08-41c2-b7bc-3b45bf99fb96",
    "ScopeName": "MyRestrictedSecGroup",
    "ScopeIdentity": "MyRestrictedSecGroup20210509121159",
    "Identity": "0218a6c0-f384-4e87-8313-2f1b0da4ce33\\5050e2d9-1797-4207-a012-27bf174ab2a7:"
    "S-1-5-21-3169798578-2053692951-2481737396-4642945;3c976d04-866b-40ce-8825-5fb08d71d9bd",
    "AppId": "5050e2d9-1797-4207-a012-27bf174ab2a7",
    "ScopeIdentityRaw": "S-1-5-21-3169798578-2053692951-2481737396-4642945;3c976d04-866b-40ce-8825-5fb08d71d9bd",
    "Description": "Restrict this app to members of the security group MyRestrictedUsersGroup",
    "AccessRight": "RestrictAccess",
    "ShardType": "All",
    "IsValid": "True",
    "ObjectState": "Unchanged",
}
GROUP_ID = "3c976d04-866b-40ce-8825-5fb08d71d9bd"

# The console's Format-List output, with the long Identity wrapped onto an indented line as printed.
FORMAT_LIST = """

RunspaceId       : 21903e33-af08-41c2-b7bc-3b45bf99fb96
ScopeName        : MyRestrictedSecGroup
ScopeIdentity    : MyRestrictedSecGroup20210509121159
Identity         : 0218a6c0-f384-4e87-8313-2f1b0da4ce33\\5050e2d9-1797-4207-a012-27bf174ab2a7:S-1-5-21-3169798578-20536
                   92951-2481737396-4642945;3c976d04-866b-40ce-8825-5fb08d71d9bd
AppId            : 5050e2d9-1797-4207-a012-27bf174ab2a7
ScopeIdentityRaw : S-1-5-21-3169798578-2053692951-2481737396-4642945;3c976d04-866b-40ce-8825-5fb08d71d9bd
Description      : Restrict this app to members of the security group MyRestrictedUsersGroup
AccessRight      : RestrictAccess
ShardType        : All
IsValid          : True
ObjectState      : Unchanged

"""


def _csv(rows: list[dict], type_line: bool) -> str:
    out = io.StringIO()
    if type_line:  # Windows PowerShell 5.1's Export-Csv without -NoTypeInformation
        out.write("#TYPE Deserialized.Microsoft.Exchange.Data.Directory.Management.ApplicationAccessPolicy\r\n")
    writer = csv.DictWriter(out, list(rows[0]), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "encoding"),
    [
        ("json object", json.dumps(POLICY, indent=4), "utf-8"),
        ("json list", json.dumps([POLICY, POLICY]), "utf-8"),
        ("json -InputObject array (5.1)", json.dumps({"value": [POLICY], "Count": 1}), "utf-8"),
        ("ConvertTo-Json > file (5.1, UTF-16 with BOM)", json.dumps(POLICY, indent=4), "utf-16"),
        ("Out-File (UTF-8 with BOM)", json.dumps([POLICY]), "utf-8-sig"),
        ("Export-Csv with #TYPE", _csv([POLICY], True), "utf-8"),
        ("Export-Csv -NoTypeInformation", _csv([POLICY], False), "utf-8"),
        ("Export-Csv > UTF-16", _csv([POLICY], True), "utf-16"),
        ("Format-List text > file (5.1, UTF-16)", FORMAT_LIST, "utf-16"),
        ("Format-List text, UTF-8", FORMAT_LIST, "utf-8"),
    ],
)
def test_access_policy_export_forms(tmp_path, name, content, encoding):
    path = tmp_path / "policies.txt"
    path.write_bytes(content.encode(encoding))
    rows = read_access_policies(path)
    assert rows, name
    row = rows[0]
    assert text(row["AppId"]) == POLICY["AppId"]
    assert text(row["AccessRight"]) == "RestrictAccess"
    assert text(row["Identity"]) == POLICY["Identity"], name  # wrapped console lines joined back
    assert scope_object_id(row) == GROUP_ID  # the scope is found by object id, not by the Exchange name
    assert flag(row["IsValid"]) is True


def test_exchange_serialised_values():
    assert text({"Name": "Sales", "DistinguishedName": "CN=Sales,..."}) == "Sales"
    assert text(["a", None, "b"]) == "a;b" and text(None) == "" and text(True) == "True"
    assert flag("False") is False and flag(None) is True and flag(0) is False
    assert parse_export("   ") == []
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_export("[{")


def test_scope_identity_guid_and_missing():
    assert scope_object_id({"ScopeIdentity": GROUP_ID.upper()}) == GROUP_ID  # an older export form
    assert scope_object_id({"ScopeIdentity": "MyRestrictedSecGroup20210509121159"}) is None
