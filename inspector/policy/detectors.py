"""Built-in detectors: behaviours that thresholds on sums cannot express.

A rule selects one with ``detector: NAME`` and tunes it with ``params``; the
rule's ``match`` and ``threshold`` choose the flows the detector sees (the DNS
detector reads ``dns.jsonl`` records instead).  Every detector keeps its state
bounded: time windows (:mod:`.window`) of ``window`` seconds per group key, at
most ``max_groups`` keys (the least recently updated closes early beyond).

Every detector **scores** what it saw, 0 to 1, from sub-scores whose weights
and ideal amounts are ``params`` in the policy file (:mod:`.scoring`), and
fires at ``min_score``: a case a little short of one figure is carried by the
others instead of falling off a cliff.  Its alert carries ``score`` and
``why``, the facts behind the score in words, besides the figures in
``evidence.<detector>``.

``dns_tunnel``
    DNS queries per (client host, registered domain): distinct subdomains (the
    labels left of the registered domain), the share carrying a long
    high-entropy label (encoded data) and their mean length.  Queries a site
    resolver forwards are attributed to its clients: a local host that answers
    DNS queries of other local hosts is a resolver, and its own queries are not
    counted (the client's query, logged on the client-to-resolver leg, is).
    Sheer volume (``max_unique_subdomains``, ``max_queries``) scores 1.
    The resolver's connections that carried the same names out of the site
    (its outbound legs, matched by query name) join the finding: what the
    content stage decoded from the tunnel is counted on those legs, so their
    records and data classes are the alert's (their uids are listed, their
    bytes are not added to the client's).
``icmp_tunnel``
    ICMP flows per (local host, remote host): payload bytes per packet above an
    ordinary ping's, sizes that vary, replies that do not mirror the requests,
    volume; any strong sign suffices and weaker ones add up
    (``1 - product(1 - weight x sub-score)``).
``beacon``
    RITA's beacon score per (local host, destination) over the window (24 h by
    default, else the capture): timing (Bowley skew and MADM of the intervals),
    size (the same of bytes sent), regularity over the pair's span and
    connection count (:func:`.scoring.beacon_score`); 1.0 is a perfect beacon.
``slow_drip``
    Small uploads (each at most ``max_upload`` bytes out, sending at least
    ``min_ratio`` times, or ``min_net_out`` bytes more than, what it receives)
    per (local host, destination organisation) that add up over hours, scored
    by their count, their total and their span, whatever the per-flow rules also
    say about them.
``long_session``
    One logical session per (local host, remote host, remote port): the
    connections that follow each other with less than ``max_gap`` of silence,
    across reconnects and across a connection split into several flow records
    by the inactivity timeout; scored by its length.
"""
from __future__ import annotations

import math
from collections import Counter, OrderedDict

from .alerts import Cover, iso_timestamp, window_object
from ..domain import registered_domain
from .scoring import beacon_score, ramp, round3, weighted
from .view import FlowView, group_value
from .window import WindowStore

__all__ = ["DETECTORS", "Detector", "DnsTunnel", "IcmpTunnel", "Beacon", "SlowDrip", "LongSession", "beacon_score",
           "label_entropy", "mask_qname"]

MB = 1 << 20
KB = 1 << 10


def label_entropy(label: str) -> float:
    """Shannon entropy of a label's characters, bits per character."""
    if not label:
        return 0.0
    n = len(label)
    return -sum(c / n * math.log2(c / n) for c in Counter(label).values())


def mask_qname(name: str, reg: str | None, keep: int = 4) -> str:
    """A query name for evidence: labels left of the registered domain longer than ``keep``
    characters become ``xy***(40)`` (first two characters and the length)."""
    if reg and (name == reg or name.endswith("." + reg)):
        left = name[:-len(reg)].rstrip(".")
    else:
        left, reg = name, None
    labels = [(lab if len(lab) <= keep else f"{lab[:2]}***({len(lab)})") for lab in left.split(".") if lab]
    return ".".join(labels + ([reg] if reg else []))


class Detector:
    NAME = ""
    #: parameter -> (kind, default, meaning); kinds: int, float, bytes, duration, bool, domains, group_by
    PARAMS: dict = {}
    WANTS_DNS = False               # fed dns.jsonl records (observe_dns)

    def __init__(self, rule, engine):
        self.rule = rule
        self.engine = engine
        self.p = {k: (dict(spec[1]) if spec[0] == "weights" else spec[1]) for k, spec in self.PARAMS.items()}
        for k, v in rule.params.items():
            if self.PARAMS.get(k, ("",))[0] == "weights":
                self.p[k].update(v)         # weights left out keep their default
            else:
                self.p[k] = v

    def observe_flow(self, fv: FlowView, content: dict | None) -> None:
        pass

    def observe_dns(self, rec: dict) -> None:
        pass

    def flush(self, now: float | None, final: bool) -> list:
        store = self.store
        windows = store.close_all() if final else store.due(now)
        out = []
        for w in windows:
            a = self.evaluate(w)
            if a is not None:
                out.append(a)
        return out

    def evaluate(self, w) -> dict | None:
        raise NotImplementedError

    def _store(self, make_state) -> WindowStore:
        return WindowStore(self.p["window"], make_state, grace=self.engine.grace,
                           max_keys=self.p.get("max_groups") or self.engine.max_groups)

    def window_info(self, w, group_by) -> dict:
        return window_object(w, self.p["window"], group_by)


# ----------------------------------------------------------------------------------------------
# DNS tunnelling
# ----------------------------------------------------------------------------------------------

class _DnsState:
    __slots__ = ("cover", "queries", "subs", "n_unique", "encoded", "max_label", "entropy_max", "qbytes",
                 "examples", "last", "via_resolver", "direct", "legs")

    def __init__(self):
        self.cover = Cover()
        self.queries = 0
        self.subs: set = set()
        self.n_unique = 0
        self.encoded = 0
        self.max_label = 0
        self.entropy_max = 0.0
        self.qbytes = 0
        self.examples: list = []
        self.last = None
        self.via_resolver = False
        self.direct = False
        self.legs: dict = {}            # uid -> (capture, ts) of resolver connections that carried the names out


class DnsTunnel(Detector):
    NAME = "dns_tunnel"
    WANTS_DNS = True
    MAX_SUBDOMAINS = 20_000          # distinct subdomains remembered per group
    MAX_RESOLVERS = 4096
    MAX_NAMES = 65_536               # query names remembered to match a client's query with its outbound leg
    MAX_LEGS = 10_000                # outbound legs kept per group
    PARAMS = {
        "window": ("duration", 3600.0, "window per (client host, registered domain)"),
        "min_unique_subdomains": ("int", 20, "distinct subdomains needed by the encoded-label test"),
        "min_label_length": ("int", 20, "a label this long or longer may carry encoded data"),
        "min_entropy": ("float", 3.3, "... if its characters' Shannon entropy (bits/char) is at least this"),
        "min_encoded_fraction": ("float", 0.5, "share of the distinct subdomains with such a label"),
        "max_unique_subdomains": ("int", 300, "this many distinct subdomains fire alone"),
        "max_queries": ("int", 5000, "this many queries fire alone"),
        "ideal_unique_subdomains": ("int", 60, "distinct subdomains at which the subdomain sub-score reaches 1"),
        "ideal_label_length": ("int", 40, "mean subdomain length at which the length sub-score reaches 1"),
        "min_score": ("float", 0.7, "score at or above which the group is a tunnel"),
        "weights": ("weights", {"subdomains": 0.3, "encoded": 0.5, "length": 0.2}, "weights of the sub-scores"),
        "ignore_domains": ("domains", ("in-addr.arpa", "ip6.arpa"), "names under these are not counted"),
        "attribute_to_clients": ("bool", True, "count a site resolver's forwarded queries for its clients"),
        "max_groups": ("int", 50_000, "groups kept (least recently updated closes early beyond)"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.store = self._store(_DnsState)
        self.resolvers: set = set()
        self.ignored = tuple(self.p["ignore_domains"])
        self.forwarded = 0
        self._legs_by_name: OrderedDict = OrderedDict()    # name -> [(uid, capture, ts)] outbound, no client yet
        self._client_of: OrderedDict = OrderedDict()       # name -> (client, registered domain)

    @staticmethod
    def _bounded(d: OrderedDict, key, value, limit: int) -> None:
        d[key] = value
        d.move_to_end(key)
        while len(d) > limit:
            d.popitem(last=False)

    def _leg(self, key, uid, capture, ts) -> None:
        """An outbound connection that carried a name of ``key``'s window out of the site."""
        legs = self.store.get(key, ts).state.legs
        if uid is not None and uid not in legs and len(legs) < self.MAX_LEGS:
            legs[uid] = (capture, ts)

    def _ignored(self, name: str) -> bool:
        return any(name == d or name.endswith("." + d) for d in self.ignored)

    def observe_dns(self, rec: dict) -> None:
        q = rec.get("query")
        if not isinstance(q, str) or not q:
            return
        name = q.strip().lower().rstrip(".")
        src, dst = rec.get("id.orig_h"), rec.get("id.resp_h")
        if src is None:
            return
        site = self.engine.site
        src_local = site.is_local(src) if site is not None else True
        if not src_local:
            return                      # a query from outside (to a server of ours) is not ours
        dst_local = site.is_local(dst) if (site is not None and dst is not None) else False
        if dst_local and dst != src and len(self.resolvers) < self.MAX_RESOLVERS:
            self.resolvers.add(dst)
        try:
            ts = float(rec.get("ts") or 0.0)
        except (TypeError, ValueError):
            ts = 0.0
        leg = (rec.get("uid"), rec.get("capture"), ts)
        if not dst_local and self.p["attribute_to_clients"]:
            client = self._client_of.get(name)
            if client is not None and client[0] != src:
                self._leg(client, *leg)
            else:
                # the client's query may be logged after the forwarded one (its reply comes later)
                self._bounded(self._legs_by_name, name, self._legs_by_name.get(name, []) + [leg], self.MAX_NAMES)
        if self.p["attribute_to_clients"] and src in self.resolvers:
            self.forwarded += 1
            return
        if self._ignored(name):
            return
        reg = registered_domain(name)
        if reg == name:
            # the whole name is a "registered domain" under a private suffix (<data>.ngrok.io): group by
            # the ICANN registered domain instead, so that the name's first label counts as a subdomain
            reg = registered_domain(name, icann_only=True) or reg
        if not reg:
            return
        sub = name[:-len(reg)].rstrip(".") if name.endswith("." + reg) else ""
        st = self.store.get((src, reg), ts).state
        if dst_local and self.p["attribute_to_clients"]:
            self._bounded(self._client_of, name, (src, reg), self.MAX_NAMES)
            for uid, capture, lts in self._legs_by_name.pop(name, ()):
                if uid not in st.legs and len(st.legs) < self.MAX_LEGS:
                    st.legs[uid] = (capture, lts)
        st.queries += 1
        st.cover.add_uid(rec.get("uid"), rec.get("capture"), ts)
        st.cover.add_time(ts)
        st.last = rec
        if dst_local:
            st.via_resolver = True
        else:
            st.direct = True
        if sub and sub not in st.subs and len(st.subs) < self.MAX_SUBDOMAINS:
            st.subs.add(sub)
            st.n_unique += 1
            st.qbytes += len(sub)
            longest = max(sub.split("."), key=len)
            ent = label_entropy(longest)
            st.max_label = max(st.max_label, len(longest))
            st.entropy_max = max(st.entropy_max, ent)
            if len(longest) >= self.p["min_label_length"] and ent >= self.p["min_entropy"]:
                st.encoded += 1
                if len(st.examples) < 3:
                    st.examples.append(mask_qname(name, reg))

    def evaluate(self, w) -> dict | None:
        st: _DnsState = w.state
        src, reg = w.key
        if self.p["attribute_to_clients"] and src in self.resolvers:
            return None
        reasons = []
        p = self.p
        frac = st.encoded / st.n_unique if st.n_unique else 0.0
        mean_len = st.qbytes / st.n_unique if st.n_unique else 0.0
        parts = {"subdomains": round3(ramp(st.n_unique, p["ideal_unique_subdomains"])), "encoded": round3(frac),
                 "length": round3(ramp(mean_len, p["ideal_label_length"]))}
        score = weighted(parts, p["weights"]) if st.n_unique >= p["min_unique_subdomains"] else 0.0
        if score >= p["min_score"] and frac >= p["min_encoded_fraction"] and st.encoded:
            reasons.append("encoded_labels")
        if st.n_unique >= p["max_unique_subdomains"]:
            reasons.append("unique_subdomains")
        if st.queries >= p["max_queries"]:
            reasons.append("query_volume")
        if not reasons:
            return None
        if reasons != ["encoded_labels"]:
            score = 1.0                 # volume alone is enough
        why = (f"{st.queries:,} queries from {src} for {st.n_unique:,} distinct names under {reg}, "
               f"{st.encoded:,} of them ({100 * frac:.0f}%) with a label of {p['min_label_length']}+ characters "
               f"and {p['min_entropy']:g}+ bits/character (encoded data), mean name length {mean_len:.0f}: "
               f"DNS-tunnel score {score:.2f} ({_parts_words(parts)})"
               + ("" if reasons == ["encoded_labels"] else f"; volume: {', '.join(r for r in reasons if r != 'encoded_labels')}"))
        eng = self.engine
        cover = st.cover
        flows = Cover()
        flows.uids, flows.n_uids, flows.first_ts, flows.last_ts = cover.uids, cover.n_uids, cover.first_ts, \
            cover.last_ts
        for uid in cover.uids:
            fv, content = eng.flow_for(uid), eng.content_for(uid)
            if fv is not None:
                flows.flows += 1
                flows.add_pair(fv)
                flows.bytes_out += fv.bytes_out
                flows.bytes_in += fv.bytes_in
                if content:
                    flows.add_content_totals(content)
                else:
                    flows._add_counts(fv.data, fv.records)
            elif content:
                flows.add_content_totals(content)
        for uid, (capture, lts) in st.legs.items():
            # the resolver's outbound legs: their decoded content is this client's tunnel
            flows.add_uid(uid, capture, lts)
            content = eng.content_for(uid)
            if content:
                flows.add_content_totals(content)
            fv = eng.flow_for(uid)
            if fv is not None:
                flows.add_pair(fv)
        last = st.last or {}
        dest_ip = last.get("id.resp_h")
        last_fv = eng.flow_for(last.get("uid"))
        if last_fv is not None and last_fv.direction != "internal":
            destination = last_fv.destination()
            destination["name"] = reg
        else:
            destination = {"name": reg, "address": dest_ip, "country": None, "asn": None, "org": None,
                           "group": None, "category": None,
                           "allowed": bool(eng.site.domain_allowed(reg)) if eng.site is not None else False}
        flows.extra["dns"] = {
            "registered_domain": reg, "queries": st.queries, "unique_subdomains": st.n_unique,
            "encoded_subdomains": st.encoded, "max_label_length": st.max_label,
            "max_label_entropy": round(st.entropy_max, 2), "qname_bytes": st.qbytes,
            "via_resolver": st.via_resolver, "reasons": reasons, "examples": list(st.examples),
        }
        flows.extra["dns"]["score"] = score
        flows.extra["dns"]["parts"] = parts
        if st.legs:
            flows.extra["dns"]["resolver_legs"] = len(st.legs)
        flows.rep = last_fv
        return eng.alert(self.rule, flows, ts=cover.last_ts, src_ip=src, src_port=last.get("id.orig_p"),
                         dest_ip=dest_ip, dest_port=last.get("id.resp_p"), proto=last.get("proto") or "udp",
                         app="dns", destination=destination,
                         window=self.window_info(w, ("src_host", "registered_domain")), score=score, why=why)


# ----------------------------------------------------------------------------------------------
# ICMP tunnelling
# ----------------------------------------------------------------------------------------------

class _IcmpState:
    __slots__ = ("cover", "sizes", "variable", "mismatch", "max_mean")

    def __init__(self):
        self.cover = Cover()
        self.sizes: set = set()
        self.variable = False
        self.mismatch = False
        self.max_mean = 0.0


class IcmpTunnel(Detector):
    NAME = "icmp_tunnel"
    PARAMS = {
        "window": ("duration", 600.0, "window per group"),
        "group_by": ("group_by", ("src_host", "dst_host"), "group key"),
        "min_packets": ("int", 10, "packets sent needed before sizes are judged"),
        "large_payload": ("int", 200, "mean payload bytes per packet above which payloads are large"),
        "max_sizes": ("int", 2, "more distinct per-flow payload sizes than this is variable"),
        "volume": ("bytes", 1 * MB, "bytes sent at which the volume sub-score reaches 1"),
        "normal_payload": ("int", 64, "payload bytes per packet of an ordinary ping (the size sub-score's 0)"),
        "min_score": ("float", 0.75, "score at or above which the group is a tunnel"),
        "weights": ("weights", {"size": 0.9, "variable": 0.8, "mismatch": 0.8, "volume": 1.0},
                    "how much each sign counts: score = 1 - product of (1 - weight x sub-score)"),
        "max_groups": ("int", 50_000, "groups kept"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.store = self._store(_IcmpState)
        self.group_by = tuple(self.p["group_by"])

    def observe_flow(self, fv: FlowView, content) -> None:
        if fv.proto not in ("icmp", "icmp6", "ipv6-icmp"):
            return
        key = tuple(group_value(fv, k) for k in self.group_by)
        st = self.store.get(key, fv.ts).state
        st.cover.add_flow(fv, content)
        if fv.packets_out:
            mean = fv.bytes_out / fv.packets_out
            st.max_mean = max(st.max_mean, mean)
            if len(st.sizes) <= 64:
                st.sizes.add(round(mean))
            if fv.bytes_out % fv.packets_out:
                st.variable = True
            # echo requests from our side: replies mirror them byte for byte
            ours_orig = fv.direction != "inbound"
            echo_req = fv.rec.get("id.orig_p") in (8, 128)
            if ours_orig and echo_req and fv.packets_in == fv.packets_out and fv.bytes_in != fv.bytes_out:
                st.mismatch = True

    def evaluate(self, w) -> dict | None:
        st: _IcmpState = w.state
        c = st.cover
        p = self.p
        parts = {"size": 0.0, "variable": 0.0, "mismatch": 0.0, "volume": round3(ramp(c.bytes_out, p["volume"]))}
        mean = c.bytes_out / c.packets_out if c.packets_out else 0.0
        variable = st.variable or len(st.sizes) > p["max_sizes"]
        if c.packets_out >= p["min_packets"]:
            parts["size"] = round3(ramp(mean - p["normal_payload"], p["large_payload"] - p["normal_payload"]))
            parts["variable"] = 1.0 if variable else 0.0
            parts["mismatch"] = 1.0 if st.mismatch else 0.0
        keep = 1.0
        for k, v in parts.items():
            keep *= 1.0 - min(1.0, p["weights"].get(k, 0.0)) * v
        score = round3(1.0 - keep)
        if score < p["min_score"]:
            return None
        reasons = [r for r, on in (("large_payload", parts["size"] >= 1.0), ("variable_payload", parts["variable"]),
                                   ("reply_mismatch", parts["mismatch"]), ("volume", parts["volume"] >= 1.0)) if on]
        facts = [f"{c.packets_out:,} ICMP packets from {c.rep.src if c.rep else '?'} to "
                 f"{c.rep.dst if c.rep else '?'} carrying {mean:,.0f} bytes each on average "
                 f"({c.bytes_out:,} bytes in all; an ordinary ping carries {p['normal_payload']})"]
        if variable:
            facts.append(f"payload sizes vary ({len(st.sizes)} distinct per-flow sizes)")
        if st.mismatch:
            facts.append("echo replies do not mirror the requests")
        why = "; ".join(facts) + f": ICMP-tunnel score {score:.2f} ({_parts_words(parts)}) >= {p['min_score']:.2f}"
        c.extra["icmp"] = {
            "packets_out": c.packets_out, "packets_in": c.packets_in,
            "mean_payload": round(c.bytes_out / c.packets_out, 1) if c.packets_out else 0.0,
            "max_flow_mean_payload": round(st.max_mean, 1), "distinct_sizes": len(st.sizes),
            "variable_sizes": st.variable or len(st.sizes) > self.p["max_sizes"], "reply_mismatch": st.mismatch,
            "reasons": reasons, "score": score, "parts": parts,
        }
        return self.engine.alert(self.rule, c, window=self.window_info(w, self.group_by), score=score, why=why)


# ----------------------------------------------------------------------------------------------
# beaconing (RITA's score)
# ----------------------------------------------------------------------------------------------

def _secs(s: float) -> str:
    """A period in words: 60 s, 4.5 min, 2.0 h."""
    s = float(s)
    if s < 120:
        return f"{s:.0f} s" if s >= 10 or s == int(s) else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _parts_words(parts: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in parts.items())


class _BeaconState:
    __slots__ = ("cover", "ts", "sizes")

    def __init__(self):
        self.cover = Cover()
        self.ts: list = []
        self.sizes: list = []


class Beacon(Detector):
    """RITA's beacon score per pair (see :mod:`.scoring`): timing, size, regularity over time, count."""

    NAME = "beacon"
    PARAMS = {
        "window": ("duration", 86400.0, "window per pair (the capture, when shorter)"),
        "group_by": ("group_by", ("src_host", "dst"), "the pair"),
        "min_connections": ("int", 12, "distinct connection times needed before a pair is scored"),
        "ideal_connections": ("int", 30, "connections at which the count sub-score reaches 1"),
        "min_score": ("float", 0.85, "score at or above which the pair is a beacon"),
        "min_iqr": ("float", 10.0, "Bowley skew counts only when Q3 - Q1 is at least this (RITA: 10)"),
        "bin_periods": ("float", 10.0, "regularity histogram: a bin spans at least this many median intervals"),
        "weights": ("weights", {"timing": 0.5, "size": 0.2, "regularity": 0.15, "count": 0.15},
                    "weights of the sub-scores in the score"),
        "max_connections": ("int", 1000, "a pair's window closes early with this many connections"),
        "max_groups": ("int", 20_000, "pairs kept"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.store = self._store(_BeaconState)
        self.group_by = tuple(self.p["group_by"])

    def observe_flow(self, fv: FlowView, content) -> None:
        key = tuple(group_value(fv, k) for k in self.group_by)
        st = self.store.get(key, fv.ts).state
        st.cover.add_flow(fv, content)
        st.ts.append(fv.ts)
        st.sizes.append(fv.bytes_out)
        if len(st.ts) >= self.p["max_connections"]:
            self.store.close(key)

    def score(self, ts, sizes) -> dict:
        p = self.p
        return beacon_score(ts, sizes, weights=p["weights"], ideal_connections=p["ideal_connections"],
                            min_iqr=p["min_iqr"], bin_periods=p["bin_periods"])

    def evaluate(self, w) -> dict | None:
        st: _BeaconState = w.state
        if len({int(t) for t in st.ts}) < self.p["min_connections"]:
            return None
        sc = self.score(st.ts, st.sizes)
        if sc["score"] < self.p["min_score"]:
            return None
        rep = st.cover.rep
        who = f"{rep.src} to {rep.dst_name or rep.dst}" if rep is not None else "one pair"
        imed, imad = sc["interval_median"], sc["interval_madm"]
        why = (f"{sc['connections']} connections from {who} over {_secs(sc['span'])}, one every {_secs(imed)} "
               f"(median; typical deviation {_secs(imad)}, {100 * imad / imed if imed else 0:.0f}%), sending "
               f"{sc['size_median']:,.0f} bytes each (median; typical deviation {sc['size_madm']:,.0f} bytes): "
               f"beacon score {sc['score']:.2f} ({_parts_words(sc['parts'])}) >= {self.p['min_score']:.2f}")
        st.cover.extra["beacon"] = sc
        return self.engine.alert(self.rule, st.cover, window=self.window_info(w, self.group_by),
                                 score=sc["score"], why=why)


# ----------------------------------------------------------------------------------------------
# slow drip
# ----------------------------------------------------------------------------------------------

class _DripState:
    __slots__ = ("cover", "uploads", "bytes", "first", "last")

    def __init__(self):
        self.cover = Cover()        # every small flow of the group: the alert's flows
        self.uploads = 0            # ... the uploads among them: what is scored
        self.bytes = 0
        self.first = None
        self.last = None


class SlowDrip(Detector):
    """Small uploads adding up, per group, scored by how many, how much and over how long.  The alert
    covers every small flow of the group in the window (the small TLS uploads that received more than
    they sent, certificates included, belong to the same channel); only uploads are scored."""

    NAME = "slow_drip"
    PARAMS = {
        "window": ("duration", 6 * 3600.0, "window per group"),
        "group_by": ("group_by", ("src_host", "dst_org"), "group key"),
        "max_upload": ("bytes", 256 * KB, "an upload is small up to this many bytes out"),
        "min_ratio": ("float", 1.5, "... and when it sends at least this many times what it receives"),
        "min_net_out": ("bytes", 1 * KB, "... or at least this many bytes more than it receives (a small TLS "
                                         "upload with a full handshake receives the server's certificates)"),
        "min_uploads": ("int", 5, "small uploads needed before a group is scored"),
        "ideal_uploads": ("int", 12, "uploads at which the count sub-score reaches 1"),
        "ideal_total": ("bytes", 48 * KB, "bytes out at which the volume sub-score reaches 1"),
        "ideal_span": ("duration", 3600.0, "first-to-last upload span at which the span sub-score reaches 1"),
        "min_score": ("float", 0.75, "score at or above which the group is a slow drip"),
        "weights": ("weights", {"count": 0.25, "volume": 0.35, "span": 0.4}, "weights of the sub-scores"),
        "max_groups": ("int", 100_000, "groups kept"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.store = self._store(_DripState)
        self.group_by = tuple(self.p["group_by"])

    def observe_flow(self, fv: FlowView, content) -> None:
        if fv.bytes_out <= 0 or fv.bytes_out > self.p["max_upload"]:
            return
        key = tuple(group_value(fv, k) for k in self.group_by)
        st = self.store.get(key, fv.ts).state
        st.cover.add_flow(fv, content)
        if fv.bytes_out < self.p["min_ratio"] * fv.bytes_in and fv.bytes_out - fv.bytes_in < self.p["min_net_out"]:
            return                                  # not an upload: part of the channel, not scored
        st.uploads += 1
        st.bytes += fv.bytes_out
        st.first = fv.ts if st.first is None else min(st.first, fv.ts)
        st.last = fv.ts if st.last is None else max(st.last, fv.ts)

    def score(self, uploads: int, total: int, span: float) -> dict:
        p = self.p
        parts = {"count": round3(ramp(uploads, p["ideal_uploads"])), "volume": round3(ramp(total, p["ideal_total"])),
                 "span": round3(ramp(span, p["ideal_span"]))}
        return {"score": weighted(parts, p["weights"]), "parts": parts}

    def evaluate(self, w) -> dict | None:
        st: _DripState = w.state
        c = st.cover
        if st.uploads < self.p["min_uploads"]:
            return None
        span = st.last - st.first
        sc = self.score(st.uploads, st.bytes, span)
        if sc["score"] < self.p["min_score"]:
            return None
        rep = c.rep
        who = f"{rep.src} to {rep.org}" if rep is not None else "one group"
        others = c.flows - st.uploads
        beside = f", beside {others} smaller connections of the same channel" if others else ""
        why = (f"{st.uploads} small uploads from {who} over {_secs(span)}, {st.bytes:,} bytes out in all (mean "
               f"{st.bytes / st.uploads:,.0f} bytes){beside}: slow-drip score {sc['score']:.2f} "
               f"({_parts_words(sc['parts'])}) >= {self.p['min_score']:.2f}")
        c.extra["slow_drip"] = {"uploads": st.uploads, "upload_bytes": st.bytes, "span": round(span, 3),
                                "mean_upload": round(st.bytes / st.uploads, 1), **sc}
        return self.engine.alert(self.rule, c, window=self.window_info(w, self.group_by), score=sc["score"], why=why)


# ----------------------------------------------------------------------------------------------
# long sessions
# ----------------------------------------------------------------------------------------------

class _Session:
    __slots__ = ("key", "cover", "start", "end", "pieces", "longest_gap", "port", "clean")

    def __init__(self, key, start: float):
        self.key = key
        self.cover = Cover()
        self.start = start
        self.end = start
        self.pieces = 0
        self.longest_gap = 0.0
        self.port = None            # local port of the latest flow
        self.clean = True           # ... and whether it closed cleanly


def _continues(prev_port, prev_clean: bool, fv: FlowView, gap: float, reconnect_gap: float) -> bool:
    """Whether flow ``fv`` carries on the session whose last flow used local port ``prev_port`` and
    ended cleanly (``prev_clean``: a TCP FIN exchange) or not.

    * the same connection, split into several records by the inactivity timeout: same local port and,
      for TCP, no SYN in the new record's history (it began mid-stream), at any gap;
    * a reconnect: a new TCP connection within ``reconnect_gap`` of a previous TCP connection that did
      not close cleanly (reset, timed out, cut): ``autossh`` and VPN clients do that.

    Repeated short connections that each close cleanly (a beacon, a poller) are not one session."""
    if fv.src_port == prev_port:
        if fv.proto != "tcp":
            return True
        history = fv.rec.get("history")
        midstream = ("S" not in history.upper()) if isinstance(history, str) and history \
            else fv.rec.get("conn_state") == "OTH"
        if midstream:
            return True
    return fv.proto == "tcp" and prev_clean is False and gap <= reconnect_gap


def _clean(fv: FlowView):
    """TCP: whether the flow ended with a FIN exchange (conn_state SF); None for UDP and ICMP, which have
    no close (only the same local port continues their session)."""
    return fv.rec.get("conn_state") == "SF" if fv.proto == "tcp" else None


class LongSession(Detector):
    """A logical session of one (local host, remote host, remote port): one connection, however many flow
    records it was split into (keepalives further apart than the flow table's inactivity timeout), and
    the reconnects that follow a connection cut without a clean close (:func:`_continues`).  Scored by
    its length; evaluated when it has been silent for ``max_gap`` (or at the end of the input, or after
    ``window`` when it goes on)."""

    NAME = "long_session"
    PARAMS = {
        "group_by": ("group_by", ("src_host", "dst_host", "dst_port"), "the endpoints of one session"),
        "max_gap": ("duration", 1800.0, "silence (end of one flow to the start of the next) that ends a session"),
        "reconnect_gap": ("duration", 120.0, "a new connection this soon after one cut without a clean close "
                                             "continues the session"),
        "ideal_duration": ("duration", 2 * 3600.0, "session length at which the score reaches 1"),
        "min_score": ("float", 0.5, "score at or above which the session is reported"),
        "window": ("duration", 86400.0, "a session still going after this long is reported and restarted"),
        "max_groups": ("int", 100_000, "sessions kept (the least recently active is evaluated early beyond)"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.group_by = tuple(self.p["group_by"])
        self.sessions: "OrderedDict[tuple, _Session]" = OrderedDict()
        self.done: list = []
        self.store = self       # the engine's stats read ``store.evictions``
        self.evictions = 0

    def observe_flow(self, fv: FlowView, content) -> None:
        key = tuple(group_value(fv, k) for k in self.group_by)
        s = self.sessions.get(key)
        gap = max(0.0, fv.ts - s.end) if s is not None else 0.0
        if s is not None and (gap > self.p["max_gap"] or fv.end - s.start > self.p["window"]
                              or not _continues(s.port, s.clean, fv, gap, self.p["reconnect_gap"])):
            self.done.append(self.sessions.pop(key))
            s = None
        if s is None:
            s = self.sessions[key] = _Session(key, fv.ts)
            while len(self.sessions) > self.p["max_groups"]:
                self.done.append(self.sessions.popitem(last=False)[1])
                self.evictions += 1
        else:
            self.sessions.move_to_end(key)
            s.longest_gap = max(s.longest_gap, gap)
        s.cover.add_flow(fv, content)
        s.pieces += 1
        s.start = min(s.start, fv.ts)
        if fv.end >= s.end:
            s.port, s.clean = fv.src_port, _clean(fv)
        s.end = max(s.end, fv.end)

    def flush(self, now: float | None, final: bool) -> list:
        if final:
            closing, self.sessions = list(self.sessions.values()), OrderedDict()
        else:
            closing = []
            if now is not None:
                for key in [k for k, s in self.sessions.items() if now - s.end > self.p["max_gap"] + self.engine.grace]:
                    closing.append(self.sessions.pop(key))
        out = []
        for s in self.done + closing:
            a = self.evaluate(s)
            if a is not None:
                out.append(a)
        self.done = []
        return out

    def evaluate(self, s: _Session) -> dict | None:
        length = s.end - s.start
        score = round3(ramp(length, self.p["ideal_duration"]))
        if score < self.p["min_score"] or score <= 0:
            return None
        c = s.cover
        rep = c.rep
        who = f"{rep.src} to {rep.dst_name or rep.dst} port {rep.dst_port}" if rep is not None else "one pair"
        how = "one connection" if s.pieces == 1 else \
            f"{s.pieces} connection records (reconnects or a connection split by inactivity; longest silence " \
            f"{_secs(s.longest_gap)})"
        why = (f"a session from {who} lasting {_secs(length)} in {how}, {c.bytes_out:,} bytes out and "
               f"{c.bytes_in:,} in: long-session score {score:.2f} (length / {_secs(self.p['ideal_duration'])}) "
               f">= {self.p['min_score']:.2f}")
        c.extra["long_session"] = {"duration": round(length, 3), "connections": s.pieces,
                                   "longest_gap": round(s.longest_gap, 3), "score": score}
        window = {"start": iso_timestamp(s.start), "seconds": round(length, 3),
                  "group": dict(zip(self.group_by, s.key))}
        return self.engine.alert(self.rule, c, ts=s.start, window=window, score=score, why=why)


DETECTORS = {cls.NAME: cls for cls in (DnsTunnel, IcmpTunnel, Beacon, SlowDrip, LongSession)}
