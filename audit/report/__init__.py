"""The report: an Excel workbook people read, a JSON twin tools read, and an optional findings CSV.

files = write_reports(result, Path("reports"), exceptions=load_exceptions(path))
print(summary_line(result, files.assessment))

write_reports reads the earlier reports (read_previous), judges the run once (assess, in assess.py) and
renders the assessment in each chosen format (the FORMATS registry, in formats.py).
"""

from audit.report.assess import Assessment, assess
from audit.report.changes import Changes
from audit.report.exceptions import AcceptedException, ExceptionsError, load_exceptions
from audit.report.formats import FORMATS
from audit.report.jsonreport import ReportError, read_json_report
from audit.report.writer import ReportFiles, summary_line, write_reports

__all__ = [
    "FORMATS",
    "AcceptedException",
    "Assessment",
    "Changes",
    "ExceptionsError",
    "ReportError",
    "ReportFiles",
    "assess",
    "load_exceptions",
    "read_json_report",
    "summary_line",
    "write_reports",
]
