"""Triage of a remediation error log: for each listed mailbox, the most likely cause and its fix.

The remediation product's console exports, for a remediation, the mailboxes it could not act on with
the error it met ("Resource is Not Found", "Remediation Failed - Unknown Reason", "The Requested User
is Invalid", "The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise"). `triage` reads
such a file, looks each mailbox up in its tenant with the audit's own collection and checks (only the
listed mailboxes: the directory is never enumerated), and explains every row:

    result = triage(config, Path("remediation-errors.csv"), tenant=None)
    result.files      # the workbook and JSON written (stem etd-audit-triage-<UTC timestamp>)
    result.exit_code

Routing (tenants.py): a mailbox goes to the configured tenant whose configured domains (tenants[].domains), else
verified domains, hold its domain; `tenant=` forces one tenant; an address in no tenant's domains is
looked up in every tenant and explained where it is found.

Every row gets an outcome:
- "fix in the tenant": a check of the audit explains the error (its evidence and fix are given);
- "nothing to fix": explained by something that needs no change in the tenant (the owner moved or
  deleted the message; a guest account);
- "no cause found": the tenant shows nothing today that explains the error (it may have been fixed
  since, or been a passing fault); the evidence says what was looked at;
- "unknown error": the error text is none of the four documented errors;
- "not assessed": the tenant or the mailbox could not be read;
- "no address": the row names no mailbox.

Exit codes (the same meanings as an audit run):
- 0: every line was read, every mailbox assessed, and no row has a cause that needs fixing in the
  tenant (rows without a cause, or with an unknown error text, are reported but need no tenant change);
- 1: at least one row has a cause to fix in the tenant;
- 2: the input cannot be used (raised as audit.csvin.InputError, e.g. empty, binary, no address or
  error column) or no tenant could be signed in to;
- 3: incomplete: a line of the file could not be read, a tenant could not be read, or a mailbox could
  not be assessed. This wins over 1, as in an audit run.

The package, in the order a triage runs: errorlog (reading the file), tenants (sign-in and collection
through the runner, routing), diagnose (one row's cause), run (the whole triage and its exit code),
output (the workbook, JSON and CSV, staged like the audit report).
"""

from audit.triage.diagnose import diagnose, mailbox_checks
from audit.triage.errorlog import ErrorLog, error_kind, mailbox_address, read_error_log
from audit.triage.output import ADDED, added_headers, read_triage_json, triage_json, write_triage
from audit.triage.result import Diagnosis, Outcome, TenantLookup, TriagedRow, TriageResult
from audit.triage.run import exit_code, triage

__all__ = [
    "ADDED",
    "mailbox_checks",
    "Diagnosis",
    "ErrorLog",
    "Outcome",
    "TenantLookup",
    "TriageResult",
    "TriagedRow",
    "added_headers",
    "diagnose",
    "error_kind",
    "exit_code",
    "mailbox_address",
    "read_error_log",
    "read_triage_json",
    "triage",
    "triage_json",
    "write_triage",
]
