"""The report: an Excel workbook people read, a JSON twin tools read, and an optional findings CSV.

files = write_reports(result, Path("reports"), exceptions=load_exceptions(path))
print(summary_line(result, files))
"""

from audit.report.changes import Changes
from audit.report.exceptions import AcceptedException, ExceptionsError, load_exceptions
from audit.report.jsonreport import ReportError, read_json_report
from audit.report.writer import FORMATS, ReportFiles, summary_line, write_reports

__all__ = [
    "FORMATS",
    "AcceptedException",
    "Changes",
    "ExceptionsError",
    "ReportError",
    "ReportFiles",
    "load_exceptions",
    "read_json_report",
    "summary_line",
    "write_reports",
]
