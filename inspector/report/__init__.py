"""Reports on what left the site: the terminal summary and the self-contained HTML report.

``Aggregates`` is fed flow records while a scan runs (bounded memory); ``print_summary``
prints it with rich; ``write_report`` writes one offline HTML file; ``Progress`` is the
scan progress callback.
"""
from .summary import Aggregates, Progress, print_summary
from .html import write_report, write_report_from_dir

__all__ = ["Aggregates", "Progress", "print_summary", "write_report", "write_report_from_dir"]
