"""Settings built once per run: the site, the destination enricher, the signatures directory."""
from __future__ import annotations

import os


def signatures_dir(arg: str | None = None) -> str:
    """``arg``, else ./signatures when it exists, else the directory shipped with inspector."""
    if arg:
        return arg
    if os.path.isdir(os.path.join("signatures", "destinations")):
        return "signatures"
    from .enrich import default_groups_dir
    return os.path.dirname(default_groups_dir())


def build_enricher(site, geoip: str | None = None, asn_db: str | None = None, signatures: str | None = None):
    """Offline geo/ASN data (bundled, or MaxMind .mmdb files) and the destination groups.

    Raises ConfigError (file:line) for a bad group file, OSError/ValueError for unreadable geo data.
    """
    from .enrich import Enricher, GeoDB, load_groups
    groups = load_groups(os.path.join(signatures_dir(signatures), "destinations"))
    geo = GeoDB(geoip_path=geoip, asn_path=asn_db)
    return Enricher(site=site, geo=geo, groups=groups)
