"""One ``Settings`` per run: everything the stages need, loaded once and passed down.

Two layers:

* :class:`SettingsSpec`: the *description*, plain values only (paths, flags, the salt text),
  frozen, hashable and picklable.  ``SettingsSpec.from_args(args, env)`` resolves the command line
  and the environment (``INSPECTOR_HASH_SALT``, the ``./signatures`` default) once, so a batch
  worker on another machine needs nothing but the spec.
* :class:`Settings`: the *loaded* objects (site, destination enricher with geo/ASN data and groups,
  content stage with the EDM fingerprints and the evidence salt, policy rules), frozen.
  ``Settings.from_args(args, env)`` = ``Settings.from_spec(SettingsSpec.from_args(args, env))``.

No stage reads ``os.environ`` or opens a configuration path on its own: they are given what
this module loaded.  A problem loading any of it is one :class:`SettingsError` line.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping

from .signature_files import signatures_dir

#: The policy engine's bound on cached content and DNS-flow summaries (scan, live and batch alike).
POLICY_MAX_CACHED = 50_000


class SettingsError(Exception):
    """A setting could not be loaded.  ``text`` is one line; ``kind`` is ``config`` (a bad or missing
    file: ``text`` is ``path[:line]: message``) or ``geo`` (unreadable geo/ASN data: ``text`` is
    ``error: cannot load geo data: ...``).  The CLI prefixes it with the command's name."""

    def __init__(self, text: str, kind: str = "config"):
        super().__init__(text)
        self.text = " ".join(str(text).split())
        self.kind = kind

    def line(self, prog: str = "inspector") -> str:
        """The one stderr line ``prog`` prints (config errors already name their file)."""
        return self.text if self.kind == "config" and prog == "inspector" else f"{prog}: {self.text}"


@dataclass(frozen=True)
class SettingsSpec:
    """What a run is configured with, as plain values (picklable: batch workers receive it)."""
    site: str | None = None            # site file (YAML); None: the default site
    geoip: str | None = None           # MaxMind country/city .mmdb; None: bundled offline data
    asn_db: str | None = None          # MaxMind ASN .mmdb; None: bundled offline data
    signatures: str | None = None      # signatures directory; None: ./signatures or the shipped one
    rules: str | None = None           # policy rules path; None: <signatures>/rules or the default policy
    hash_salt: str | None = None       # evidence-hash salt (already resolved from $INSPECTOR_HASH_SALT)
    show_raw: bool = False             # raw identifier values in content.jsonl
    max_flows: int = 1_000_000         # flow table bound
    analysis: bool = True              # protocols, destinations, content (False: --flows-only)
    policy: bool = True                # run the policy engine (needs ``analysis``)

    @classmethod
    def from_args(cls, args: Any, env: Mapping[str, str] | None = None, **extra) -> "SettingsSpec":
        """The spec of parsed ``args`` (any object with the analysis options; missing ones take their
        defaults) and ``env`` (a mapping; only ``INSPECTOR_HASH_SALT`` is read).  ``extra`` sets
        fields of a subclass or overrides."""
        env = {} if env is None else env
        kw = {}
        for f in fields(cls):
            if hasattr(args, f.name):
                kw[f.name] = getattr(args, f.name)
        if getattr(args, "flows_only", False):
            kw["analysis"] = False
        if getattr(args, "no_policy", False):
            kw["policy"] = False
        kw["hash_salt"] = getattr(args, "hash_salt", None) or env.get("INSPECTOR_HASH_SALT") or None
        if kw.get("max_flows") is None:
            kw.pop("max_flows", None)
        kw.update(extra)
        return cls(**kw)


@dataclass(frozen=True)
class Settings:
    """The loaded settings of a run.  Build it with :meth:`from_args` or :meth:`from_spec`; tests and
    the Python API may construct one directly (``Settings(site=..., enricher=..., content=...)``)."""
    site: Any = None                   # inspector.site.Site (None: the default site)
    enricher: Any = None               # inspector.enrich.Enricher, or None (no destination data)
    content: Any = None                # inspector.content.stage.ContentStage, or None
    rules: Any = None                  # loaded policy rules (a list), or None: no policy stage
    max_flows: int = 1_000_000
    analysis: bool = True              # the application layer (protocol logs); False: flows only
    spec: SettingsSpec | None = None   # what it was built from (None when constructed directly)

    def __post_init__(self):
        if self.site is None:
            from .site import Site
            object.__setattr__(self, "site", Site.default())

    @classmethod
    def from_args(cls, args: Any, env: Mapping[str, str] | None = None) -> "Settings":
        """Load everything the command line and the environment name.  Raises SettingsError."""
        return cls.from_spec(SettingsSpec.from_args(args, env))

    @classmethod
    def from_spec(cls, spec: SettingsSpec) -> "Settings":
        """Load the site, destination data, content stage and policy rules of ``spec``, once.

        Raises SettingsError (one line) for a bad or missing site, group, rule or EDM file, or
        unreadable geo data."""
        from .errors import ConfigError
        site = load_site(spec.site)
        enricher = content = rules = None
        if spec.analysis:
            enricher = build_enricher(site, spec.geoip, spec.asn_db, spec.signatures)
            try:
                content = build_content(site, spec.signatures, spec.show_raw, spec.hash_salt)
            except ConfigError as e:
                raise SettingsError(str(e)) from None
            if spec.policy:
                rules = load_rules(spec.rules, spec.signatures)
        return cls(site=site, enricher=enricher, content=content, rules=rules, max_flows=spec.max_flows,
                   analysis=spec.analysis, spec=spec)

    def new_policy(self):
        """A fresh policy engine over the loaded rules (engines are stateful: one per run or capture),
        or None when the run has no policy stage."""
        if self.rules is None:
            return None
        from .policy import PolicyEngine
        return PolicyEngine(self.rules, self.site, max_cached=POLICY_MAX_CACHED)


# ----------------------------------------------------------------------------------------------
# loaders (each raises SettingsError with one line)
# ----------------------------------------------------------------------------------------------

def load_site(path: str | None):
    """The site file at ``path``, or the default site."""
    from .errors import ConfigError
    from .site import Site, load_site as _load
    if not path:
        return Site.default()
    try:
        return _load(path)
    except ConfigError as e:
        raise SettingsError(str(e)) from None


def load_rules(rules: str | None = None, signatures: str | None = None):
    """The policy rules: ``rules``, else ``<signatures>/rules``, else the shipped default policy."""
    from .errors import ConfigError
    from .policy import load_rules as _load, rules_dir
    try:
        return _load(rules or rules_dir(signatures_dir(signatures)))
    except ConfigError as e:
        raise SettingsError(str(e)) from None
    except OSError as e:
        raise SettingsError(f"error: {rules}: {e.strerror or e}") from None


def build_enricher(site, geoip: str | None = None, asn_db: str | None = None, signatures: str | None = None):
    """Offline geo/ASN data (bundled, or MaxMind .mmdb files) and the destination groups."""
    from .enrich import Enricher, GeoDB, load_groups
    from .errors import ConfigError
    try:
        groups = load_groups(os.path.join(signatures_dir(signatures), "destinations"))
        geo = GeoDB(geoip_path=geoip, asn_path=asn_db)
    except ConfigError as e:
        raise SettingsError(str(e)) from None
    except (OSError, ValueError) as e:
        raise SettingsError(f"error: cannot load geo data: {e}", kind="geo") from None
    return Enricher(site=site, geo=geo, groups=groups)


def evidence_salt(site, hash_salt: str | None) -> bytes:
    """The HMAC key of evidence hashes: ``hash_salt`` (from ``--hash-salt`` or $INSPECTOR_HASH_SALT,
    resolved by SettingsSpec.from_args), else derived from the site name, so runs over the same site
    stay comparable.  Set your own."""
    if hash_salt:
        return hash_salt.encode("utf-8")
    return hashlib.sha256(b"inspector-site:" + site.name.encode("utf-8")).digest()


def build_content(site, signatures: str | None = None, show_raw: bool = False, hash_salt: str | None = None):
    """The content stage: identifiers, record counting, EDM fingerprints from ``signatures/edm/*.edm``.

    Evidence hashes are HMAC-SHA256 keyed with :func:`evidence_salt`.  Raises ConfigError for a bad
    EDM file."""
    import glob

    from .content.edm import EDMIndex
    from .content.stage import ContentStage
    edm = [EDMIndex.load(p) for p in sorted(glob.glob(os.path.join(signatures_dir(signatures), "edm", "*.edm")))]
    return ContentStage(salt=evidence_salt(site, hash_salt), show_raw=show_raw, edm=edm)
