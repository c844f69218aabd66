"""Reports on what left the site: aggregates and the self-contained HTML report.

``Aggregates`` is fed flow records while a scan runs (bounded memory); ``write_report``
writes one offline HTML file.  The terminal summary and the progress bar are the CLI's
(``inspector.cli.terminal``).
"""
from .summary import Aggregates
from .html import write_report, write_report_from_dir

__all__ = ["Aggregates", "write_report", "write_report_from_dir"]
