"""inspector: network traffic inspector for warehouse and distribution-centre networks."""
from __future__ import annotations

__version__ = "0.1.0"


def read_flows(path, site=None):
    """Scan a capture (file, directory, glob or list of them) and return its flows as a DataFrame.

    ``site`` is a ``inspector.site.Site``, a path to a site file, or None for the defaults.
    Columns are the ``flows.jsonl`` fields (Zeek conn.log names plus inspector's own).
    """
    from .outputs import records_frame
    from .pipeline import run_scan
    from .scan import FLOW_FIELDS
    from .settings import build_enricher, load_site
    if site is None or isinstance(site, str):
        site = load_site(site)
    paths = list(path) if isinstance(path, (list, tuple)) else [str(path)]
    res = run_scan(paths, site=site, enricher=build_enricher(site))
    return records_frame(res.flows, FLOW_FIELDS)
