"""Settings built once per run: the site, the destination enricher, the signatures directory."""
from __future__ import annotations

import os


def add_analysis_arguments(p) -> None:
    """The options ``scan`` and ``live`` share for destination data, signatures and evidence."""
    p.add_argument("--geoip", metavar="PATH", help="MaxMind country/city .mmdb (default: bundled offline data)")
    p.add_argument("--asn-db", metavar="PATH", help="MaxMind ASN .mmdb (default: bundled offline data)")
    p.add_argument("--signatures", metavar="DIR", help="signatures directory (default: ./signatures or the "
                                                        "one shipped with inspector)")
    p.add_argument("--show-raw", action="store_true",
                   help="write raw identifier values in content.jsonl (default: masked samples and salted hashes)")
    p.add_argument("--hash-salt", metavar="TEXT", help="salt for evidence hashes (default: $INSPECTOR_HASH_SALT, "
                                                       "else derived from the site name)")


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


def build_content(site, signatures: str | None = None, show_raw: bool = False, hash_salt: str | None = None):
    """The content stage: identifiers, record counting, EDM fingerprints from ``signatures/edm/*.edm``.

    Evidence hashes are HMAC-SHA256 with ``hash_salt`` (or $INSPECTOR_HASH_SALT); without one, a
    salt derived from the site name, so runs over the same site stay comparable.  Set your own.
    """
    import glob
    import hashlib

    from .content.edm import EDMIndex
    from .content.stage import ContentStage
    salt_text = hash_salt or os.environ.get("INSPECTOR_HASH_SALT")
    if salt_text:
        salt = salt_text.encode("utf-8")
    else:
        salt = hashlib.sha256(b"inspector-site:" + site.name.encode("utf-8")).digest()
    edm = [EDMIndex.load(p) for p in sorted(glob.glob(os.path.join(signatures_dir(signatures), "edm", "*.edm")))]
    return ContentStage(salt=salt, show_raw=show_raw, edm=edm)
