"""Built-in detectors: behaviours that thresholds on sums cannot express.

A rule selects one with ``detector: NAME`` and tunes it with ``params``; the
rule's ``match`` and ``threshold`` choose the flows the detector sees (the DNS
detector reads ``dns.jsonl`` records instead).  Every detector keeps its state
in bounded time windows (:mod:`.window`): ``window`` seconds per group key,
at most ``max_groups`` keys (the least recently updated closes early beyond).

``dns_tunnel``
    DNS queries per (client host, registered domain): how many, how many
    distinct subdomains (the labels left of the registered domain), and how many
    of those carry a long high-entropy label (encoded data).  Queries a site
    resolver forwards are attributed to its clients: a local host that answers
    DNS queries of other local hosts is a resolver, and its own queries are not
    counted (the client's query, logged on the client-to-resolver leg, is).
``icmp_tunnel``
    ICMP flows per (local host, remote host): payload bytes per packet (ping
    sends 32-64 bytes), whether sizes vary (a flow whose bytes are not a
    multiple of its packets, an echo whose replies do not mirror its requests,
    several per-flow sizes) and volume.
``beacon``
    RITA's beacon score per (local host, destination) over the window (24 h by
    default, else the capture): Bowley skew and median absolute deviation about
    the median (MADM) of connection intervals and of bytes sent, a smallness
    score for the usual size and a connection-count score; 1.0 is a perfect
    beacon.
``slow_drip``
    Small uploads (each at most ``max_upload`` bytes out, sending more than it
    receives) per (local host, destination organisation) that add up over
    hours: at least ``min_uploads`` of them, ``min_total`` bytes, spread over
    ``min_span`` seconds or more.
"""
from __future__ import annotations

import math
from collections import Counter

from .alerts import Cover, window_object
from ..domain import registered_domain
from .view import FlowView, group_value
from .window import WindowStore

__all__ = ["DETECTORS", "Detector", "DnsTunnel", "IcmpTunnel", "Beacon", "SlowDrip", "beacon_score",
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
        self.p = {k: spec[1] for k, spec in self.PARAMS.items()}
        self.p.update(rule.params)

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
                 "examples", "last", "via_resolver", "direct")

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


class DnsTunnel(Detector):
    NAME = "dns_tunnel"
    WANTS_DNS = True
    MAX_SUBDOMAINS = 20_000          # distinct subdomains remembered per group
    MAX_RESOLVERS = 4096
    PARAMS = {
        "window": ("duration", 3600.0, "window per (client host, registered domain)"),
        "min_unique_subdomains": ("int", 20, "distinct subdomains needed by the encoded-label test"),
        "min_label_length": ("int", 20, "a label this long or longer may carry encoded data"),
        "min_entropy": ("float", 3.3, "... if its characters' Shannon entropy (bits/char) is at least this"),
        "min_encoded_fraction": ("float", 0.5, "share of the distinct subdomains with such a label"),
        "max_unique_subdomains": ("int", 300, "this many distinct subdomains fire alone"),
        "max_queries": ("int", 5000, "this many queries fire alone"),
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
        try:
            ts = float(rec.get("ts") or 0.0)
        except (TypeError, ValueError):
            ts = 0.0
        st = self.store.get((src, reg), ts).state
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
        frac = st.encoded / st.n_unique if st.n_unique else 0.0
        if st.n_unique >= self.p["min_unique_subdomains"] and frac >= self.p["min_encoded_fraction"] \
                and st.encoded:
            reasons.append("encoded_labels")
        if st.n_unique >= self.p["max_unique_subdomains"]:
            reasons.append("unique_subdomains")
        if st.queries >= self.p["max_queries"]:
            reasons.append("query_volume")
        if not reasons:
            return None
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
        flows.rep = last_fv
        return eng.alert(self.rule, flows, ts=cover.last_ts, src_ip=src, src_port=last.get("id.orig_p"),
                         dest_ip=dest_ip, dest_port=last.get("id.resp_p"), proto=last.get("proto") or "udp",
                         app="dns", destination=destination,
                         window=self.window_info(w, ("src_host", "registered_domain")))


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
        "volume": ("bytes", 1 * MB, "this many bytes sent fire alone"),
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
        reasons = []
        if c.packets_out >= self.p["min_packets"]:
            mean = c.bytes_out / c.packets_out
            if mean >= self.p["large_payload"]:
                reasons.append("large_payload")
            if st.variable or len(st.sizes) > self.p["max_sizes"]:
                reasons.append("variable_payload")
            if st.mismatch:
                reasons.append("reply_mismatch")
        if c.bytes_out >= self.p["volume"]:
            reasons.append("volume")
        if not reasons:
            return None
        c.extra["icmp"] = {
            "packets_out": c.packets_out, "packets_in": c.packets_in,
            "mean_payload": round(c.bytes_out / c.packets_out, 1) if c.packets_out else 0.0,
            "max_flow_mean_payload": round(st.max_mean, 1), "distinct_sizes": len(st.sizes),
            "variable_sizes": st.variable or len(st.sizes) > self.p["max_sizes"], "reply_mismatch": st.mismatch,
            "reasons": reasons,
        }
        return self.engine.alert(self.rule, c, window=self.window_info(w, self.group_by))


# ----------------------------------------------------------------------------------------------
# beaconing (RITA's score)
# ----------------------------------------------------------------------------------------------

def _quantile(sorted_vals, q: float) -> float:
    """Linear-interpolation quantile of a sorted sequence."""
    n = len(sorted_vals)
    if n == 1:
        return float(sorted_vals[0])
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return float(sorted_vals[lo]) + (float(sorted_vals[hi]) - float(sorted_vals[lo])) * (pos - lo)


def _median(vals) -> float:
    return _quantile(sorted(vals), 0.5)


def _bowley(sorted_vals) -> tuple[float, float, float, float]:
    """(skew, Q1, Q2, Q3); skew 0 when Q1 = Q3 or the median sits on a quartile (RITA's rule)."""
    low, mid, high = (_quantile(sorted_vals, q) for q in (0.25, 0.5, 0.75))
    den = high - low
    skew = (low + high - 2 * mid) / den if den != 0 and mid != low and mid != high else 0.0
    return skew, low, mid, high


def beacon_score(timestamps, sizes, ts_jitter: float = 30.0, ds_jitter: float = 32.0) -> dict:
    """RITA's beacon score of one (source, destination) pair.

    ``timestamps``: connection start times (seconds); duplicates within a second count once, as RITA
    keeps unique timestamps.  ``sizes``: bytes sent per connection.  Scores (1.0 best):

    * ``ts_skew`` = 1 - |Bowley skew| of the intervals, ``ts_madm`` = 1 - MADM/``ts_jitter`` (floored
      at 0), ``ts_conn`` = intervals / (span / median interval), capped at 1 (how much of the span the
      beacon covers; RITA v4 divides by the whole data set's span instead);
    * ``ds_skew``, ``ds_madm`` = 1 - MADM/``ds_jitter``, ``ds_smallness`` = 1 - mode size / 65535;
    * ``ts_score``, ``ds_score`` (means of three), ``score`` (mean of six), rounded up to 3 decimals.
    """
    ts = sorted({round(float(t)) for t in timestamps})
    res = {"connections": len(ts), "score": 0.0, "ts_score": 0.0, "ds_score": 0.0}
    if len(ts) < 3:
        return res
    deltas = sorted(b - a for a, b in zip(ts, ts[1:]))
    ts_skew, _l, ts_mid, _h = _bowley(deltas)
    ts_madm = _median([abs(d - ts_mid) for d in deltas])
    span = ts[-1] - ts[0]
    ts_skew_score = 1.0 - abs(ts_skew)
    ts_madm_score = max(0.0, 1.0 - ts_madm / ts_jitter) if ts_jitter > 0 else float(ts_madm == 0)
    ts_conn_score = min(1.0, len(deltas) / (span / ts_mid)) if ts_mid > 0 and span > 0 else 0.0
    ds = sorted(int(s) for s in sizes) or [0]
    ds_skew, _l, ds_mid, _h = _bowley(ds)
    ds_madm = _median([abs(d - ds_mid) for d in ds])
    counts = Counter(ds)
    top = max(counts.values())
    ds_mode = min(v for v, c in counts.items() if c == top)
    ds_skew_score = 1.0 - abs(ds_skew)
    ds_madm_score = max(0.0, 1.0 - ds_madm / ds_jitter) if ds_jitter > 0 else float(ds_madm == 0)
    ds_small_score = max(0.0, 1.0 - ds_mode / 65535.0)
    ts_sum = ts_skew_score + ts_madm_score + ts_conn_score
    ds_sum = ds_skew_score + ds_madm_score + ds_small_score

    def up(x: float) -> float:
        return math.ceil(round(x * 1000, 6)) / 1000

    res.update({
        "ts_skew": up(ts_skew_score), "ts_madm": up(ts_madm_score), "ts_conn": up(ts_conn_score),
        "ds_skew": up(ds_skew_score), "ds_madm": up(ds_madm_score), "ds_smallness": up(ds_small_score),
        "ts_score": up(ts_sum / 3), "ds_score": up(ds_sum / 3), "score": up((ts_sum + ds_sum) / 6),
        "median_interval": ts_mid, "interval_madm": ts_madm, "median_bytes_out": ds_mid, "bytes_out_madm": ds_madm,
        "span": span,
    })
    return res


class _BeaconState:
    __slots__ = ("cover", "ts", "sizes")

    def __init__(self):
        self.cover = Cover()
        self.ts: list = []
        self.sizes: list = []


class Beacon(Detector):
    NAME = "beacon"
    PARAMS = {
        "window": ("duration", 86400.0, "window per pair (the capture, when shorter)"),
        "group_by": ("group_by", ("src_host", "dst"), "the pair"),
        "min_connections": ("int", 10, "connections needed before a pair is scored"),
        "min_score": ("float", 0.8, "score at or above which the pair is a beacon"),
        "ts_jitter": ("float", 30.0, "interval MADM (seconds) at which the MADM score reaches 0"),
        "ds_jitter": ("float", 32.0, "size MADM (bytes) at which the MADM score reaches 0"),
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

    def evaluate(self, w) -> dict | None:
        st: _BeaconState = w.state
        if len({round(t) for t in st.ts}) < self.p["min_connections"]:
            return None
        sc = beacon_score(st.ts, st.sizes, self.p["ts_jitter"], self.p["ds_jitter"])
        if sc["score"] < self.p["min_score"]:
            return None
        st.cover.extra["beacon"] = sc
        return self.engine.alert(self.rule, st.cover, window=self.window_info(w, self.group_by))


# ----------------------------------------------------------------------------------------------
# slow drip
# ----------------------------------------------------------------------------------------------

class SlowDrip(Detector):
    NAME = "slow_drip"
    PARAMS = {
        "window": ("duration", 6 * 3600.0, "window per group"),
        "group_by": ("group_by", ("src_host", "dst_org"), "group key"),
        "max_upload": ("bytes", 256 * KB, "an upload is small up to this many bytes out"),
        "min_ratio": ("float", 2.0, "... and when it sends at least this many times what it receives"),
        "min_uploads": ("int", 5, "small uploads needed"),
        "min_total": ("bytes", 32 * KB, "bytes out they must add up to"),
        "min_span": ("duration", 3600.0, "seconds from the first to the last small upload"),
        "max_groups": ("int", 100_000, "groups kept"),
    }

    def __init__(self, rule, engine):
        super().__init__(rule, engine)
        self.store = self._store(Cover)
        self.group_by = tuple(self.p["group_by"])

    def observe_flow(self, fv: FlowView, content) -> None:
        if fv.bytes_out <= 0 or fv.bytes_out > self.p["max_upload"]:
            return
        if fv.bytes_out < self.p["min_ratio"] * fv.bytes_in:
            return
        key = tuple(group_value(fv, k) for k in self.group_by)
        self.store.get(key, fv.ts).state.add_flow(fv, content)

    def evaluate(self, w) -> dict | None:
        c: Cover = w.state
        span = (c.last_ts - c.first_ts) if c.flows else 0.0
        if c.flows < self.p["min_uploads"] or c.bytes_out < self.p["min_total"] or span < self.p["min_span"]:
            return None
        c.extra["slow_drip"] = {"uploads": c.flows, "bytes_out": c.bytes_out, "span": round(span, 3),
                                "mean_upload": round(c.bytes_out / c.flows, 1)}
        return self.engine.alert(self.rule, c, window=self.window_info(w, self.group_by))


DETECTORS = {cls.NAME: cls for cls in (DnsTunnel, IcmpTunnel, Beacon, SlowDrip)}
