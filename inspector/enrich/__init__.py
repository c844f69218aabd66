"""Destination enrichment: for an outbound flow, who is the destination?

``Enricher(site, geo, groups).destination(resp_h, name)`` returns a dict with
exactly the keys of :data:`DESTINATION_FIELDS`:

* ``dst_country``  ISO 3166-1 alpha-2 code of the address (GeoDB), or None
* ``dst_asn``      AS number (int) of the address, or None (the bundled data
                   has AS names only: see :mod:`inspector.enrich.geo`)
* ``dst_org``      AS organisation name, or None
* ``dst_group``    destination group id (:mod:`inspector.enrich.groups`), or None
* ``dst_category`` that group's category, or None
* ``dst_allowed``  ``site.is_allowed(name, addr, asn)`` (bool)

``name`` is the best name known for the destination (TLS SNI, HTTP Host,
DNS answer), or None. Everything is offline; results are cached per
``(resp_h, name)``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .geo import GeoDB, GeoInfo
from .groups import CATEGORIES, Group, Groups, check, default_groups_dir, load_groups

__all__ = [
    "DESTINATION_FIELDS",
    "Enricher",
    "GeoDB",
    "GeoInfo",
    "Group",
    "Groups",
    "CATEGORIES",
    "check",
    "default_groups_dir",
    "load_groups",
]

DESTINATION_FIELDS = ("dst_country", "dst_asn", "dst_org", "dst_group",
                      "dst_category", "dst_allowed")

_CACHE_MAX = 262144


class Enricher:
    """Combines a :class:`~inspector.site.Site`, a :class:`GeoDB` and
    :class:`Groups`. ``geo`` / ``groups`` may be None (their fields are then
    None); ``site`` None means ``Site.default()`` (nothing allowed)."""

    def __init__(self, site: Any = None, geo: Optional[GeoDB] = None,
                 groups: Optional[Groups] = None) -> None:
        if site is None:
            from ..site import Site
            site = Site.default()
        self.site = site
        self.geo = geo
        self.groups = groups if groups is not None else Groups()
        self._cache: Dict[Any, Dict[str, Any]] = {}

    def destination(self, resp_h: Any, name: Optional[str] = None,
                    cert: Optional[Tuple[Optional[str], Optional[str]]] = None) -> Dict[str, Any]:
        """Destination fields for one responder address, optional name and optional server
        certificate ``(subject, issuer)`` (destination groups may match its names).
        The returned dict is a fresh copy (safe to modify)."""
        return dict(self._cached(resp_h, name or None, cert or None))

    def _compute(self, addr: Any, name: Optional[str], cert=None) -> Dict[str, Any]:
        country = asn = org = None
        if self.geo is not None and addr is not None:
            country, asn, org = self.geo.lookup(addr)
        group, category = self.groups.match(name, addr, asn, cert)
        return {
            "dst_country": country,
            "dst_asn": asn,
            "dst_org": org,
            "dst_group": group,
            "dst_category": category,
            "dst_allowed": bool(self.site.is_allowed(name, addr, asn)),
        }

    def destinations(self, resp_hs: Iterable[Any],
                     names: Optional[Iterable[Optional[str]]] = None) -> Dict[str, List[Any]]:
        """Column-wise :meth:`destination` for many flows (e.g. a DataFrame's
        ``id.resp_h`` and a name column): a dict of equal-length lists keyed by
        :data:`DESTINATION_FIELDS`."""
        addrs: Sequence[Any] = resp_hs if isinstance(resp_hs, Sequence) else list(resp_hs)
        if names is None:
            name_list: Sequence[Optional[str]] = [None] * len(addrs)
        else:
            name_list = names if isinstance(names, Sequence) else list(names)
            if len(name_list) != len(addrs):
                raise ValueError(f"{len(addrs)} addresses but {len(name_list)} names")
        out: Dict[str, List[Any]] = {k: [] for k in DESTINATION_FIELDS}
        cols = [out[k] for k in DESTINATION_FIELDS]
        for addr, name in zip(addrs, name_list):
            if name is not None and not isinstance(name, str):
                name = None                     # NaN / pd.NA from a DataFrame
            d = self._cached(addr, name or None)
            for col, k in zip(cols, DESTINATION_FIELDS):
                col.append(d[k])
        return out

    def _cached(self, addr: Any, name: Optional[str], cert=None) -> Dict[str, Any]:
        key = (addr, name) if cert is None else (addr, name, cert)
        try:
            hit = self._cache.get(key)
        except TypeError:
            return self._compute(addr, name, cert)
        if hit is None:
            hit = self._compute(addr, name, cert)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def clear_cache(self) -> None:
        self._cache.clear()
