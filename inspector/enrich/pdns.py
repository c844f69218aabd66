"""Passive DNS from the capture itself: which name did a host ask for before it
connected to an address?

Answers are recorded with their time and TTL.  CNAME chains are followed back to
the name the client asked for (``www.shop.example CNAME edge.cdn.example A
192.0.2.7`` names 192.0.2.7 ``www.shop.example``).  ``name_for(addr, ts)`` only
uses answers seen *before* ``ts`` (a name seen only after a connection started
does not name it), prefers answers still within their TTL, and otherwise falls
back to the most recent older answer (clients keep using addresses past TTL).
Memory is bounded: the least recently updated addresses are dropped past
``max_addrs``.
"""
from __future__ import annotations

from collections import OrderedDict


class PassiveDNS:
    def __init__(self, max_addrs: int = 500_000, max_per_addr: int = 8, max_cnames: int = 200_000):
        self.addrs: OrderedDict = OrderedDict()   # addr -> [(ts, expires, name)] newest last
        self.cname_src: OrderedDict = OrderedDict()  # cname target -> (ts, name that pointed to it)
        self.max_addrs = max_addrs
        self.max_per_addr = max_per_addr
        self.max_cnames = max_cnames

    def answer(self, owner: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        owner = owner.rstrip(".").lower()
        if rtype == "CNAME":
            target = answer.rstrip(".").lower()
            if target != owner:
                self.cname_src[target] = (ts, owner)
                self.cname_src.move_to_end(target)
                if len(self.cname_src) > self.max_cnames:
                    self.cname_src.popitem(last=False)
            return
        if rtype not in ("A", "AAAA"):
            return
        name = self._origin(owner)
        ent = self.addrs.get(answer)
        if ent is None:
            ent = []
            self.addrs[answer] = ent
            if len(self.addrs) > self.max_addrs:
                self.addrs.popitem(last=False)
        else:
            self.addrs.move_to_end(answer)
        ent.append((ts, ts + max(float(ttl or 0), 0.0), name))
        if len(ent) > self.max_per_addr:
            del ent[0]

    def _origin(self, name: str) -> str:
        """Follow CNAME edges back to the name first asked for (bounded, loop-safe)."""
        seen = {name}
        for _ in range(16):
            src = self.cname_src.get(name)
            if src is None or src[1] in seen:
                break
            name = src[1]
            seen.add(name)
        return name

    def name_for(self, addr: str, ts: float) -> str | None:
        ent = self.addrs.get(addr)
        if not ent:
            return None
        fresh = None
        older = None
        for seen_ts, expires, name in ent:
            if seen_ts > ts:
                continue
            if expires >= ts:
                fresh = name
            older = name
        return fresh or older
