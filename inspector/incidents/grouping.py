"""Which alerts tell one story: story keys, merging by key and by shared flows, site-wide aggregates.

See the package docstring for the rules.  Everything here is a pure function of the alerts (and, for
the flows a site-wide aggregate sums that no incident holds, of their flow records), so the same input
gives the same incidents in the same order.
"""
from __future__ import annotations

from ..enrich.label import destination_label as _label
from ..policy.alerts import app_proto

__all__ = ["destination_label", "channel", "story_key", "flow_story_key", "is_site_wide", "Group", "group_alerts"]


def destination_label(dest: dict | None) -> str:
    """The organisation an investigator names for a destination (an alert's ``destination`` object):
    the site-wide destination label (``enrich.label``: AS organisation, else destination group, else
    registered domain, else ``AS<n>``, else the address)."""
    d = dest if isinstance(dest, dict) else {}
    return _label(d.get("org"), d.get("group"), d.get("name"), d.get("asn"), d.get("address"))[0]


def channel(app: str | None, proto: str | None) -> str:
    """How the data left: the application protocol (EVE ``app_proto``), else the transport."""
    return str(app or (proto or "").lower() or "unknown")


def story_key(alert: dict) -> tuple:
    """(local host, destination label, channel) of an alert."""
    return (alert.get("src_ip"), destination_label(alert.get("destination")),
            channel(alert.get("app_proto"), alert.get("proto")))


def flow_story_key(fv) -> tuple:
    """The story key of one flow (a ``policy.view.FlowView``), as an alert over it alone would have."""
    return (fv.src, destination_label(fv.destination()), channel(app_proto(fv), fv.proto))


def is_site_wide(alert: dict) -> bool:
    """An aggregate over several local hosts (its window's group has no ``src_host``): it attaches to the
    incidents whose flows it sums instead of being a story of its own."""
    w = alert.get("window")
    if not isinstance(w, dict):
        return False
    group = w.get("group")
    return isinstance(group, dict) and "src_host" not in group


class Group:
    """One incident in the making: its alerts (indices), the site-wide aggregates attached to it, its flows
    (uids in order of appearance) and its story keys."""

    __slots__ = ("alerts", "attached", "uids", "_uid_set", "keys")

    def __init__(self):
        self.alerts: list = []
        self.attached: list = []
        self.uids: list = []
        self._uid_set: set = set()
        self.keys: list = []

    def add_uid(self, uid) -> None:
        if uid is not None and uid not in self._uid_set:
            self._uid_set.add(uid)
            self.uids.append(uid)

    def has(self, uid) -> bool:
        return uid in self._uid_set


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_alerts(alerts: list, flows: dict) -> list:
    """Alerts -> ``Group`` list (in order of each group's first alert).  ``flows``: uid -> FlowView of
    the covered flows at hand (used for the flows of site-wide aggregates that no story holds)."""
    story = [i for i, a in enumerate(alerts) if not is_site_wide(a)]
    wide = [i for i, a in enumerate(alerts) if is_site_wide(a)]
    uf = _UnionFind(len(alerts))
    by_key: dict = {}
    by_uid: dict = {}
    for i in story:
        a = alerts[i]
        k = story_key(a)
        if k in by_key:
            uf.union(by_key[k], i)
        else:
            by_key[k] = i
        for u in a.get("uids") or ():
            if u in by_uid:
                uf.union(by_uid[u], i)
            else:
                by_uid[u] = i
    groups: dict = {}
    for i in story:
        g = groups.get(uf.find(i))
        if g is None:
            g = groups[uf.find(i)] = Group()
        g.alerts.append(i)
        k = story_key(alerts[i])
        if k not in g.keys:
            g.keys.append(k)
        for u in alerts[i].get("uids") or ():
            g.add_uid(u)
    out = list(groups.values())
    key_group = {k: g for g in out for k in g.keys}
    uid_group = {u: g for g in out for u in g.uids}
    for i in wide:
        a = alerts[i]
        joined = []
        for u in a.get("uids") or ():
            g = uid_group.get(u)
            if g is None:
                fv = flows.get(u)
                k = flow_story_key(fv) if fv is not None else story_key(a)
                g = key_group.get(k)
                if g is None:
                    g = key_group[k] = Group()
                    g.keys.append(k)
                    out.append(g)
                g.add_uid(u)
                uid_group[u] = g
            if g not in joined:
                joined.append(g)
        if not joined:              # an aggregate without flows: a story of its own
            g = Group()
            g.keys.append(story_key(a))
            out.append(g)
            joined.append(g)
        for g in joined:
            g.attached.append(i)
    return out
