"""The flow table: decoded rows -> bidirectional connections with Zeek conn.log semantics.

Keys are the 5-tuple plus outer and inner VLAN in a canonical order, so both
directions meet.  Per batch the keys are hashed with numpy and looked up once
per distinct key; the rows then run through the compiled kernel
(``kernel.process``) in packet order.  Connections end on Zeek's timers replayed
in packet time (see ``kernel``); the table is bounded by ``max_flows``: beyond
it the least recently active tenth is evicted (``flow.table_full`` weird).

``reference.PyFlowTable`` is the same semantics in plain Python; tests require
both to give identical records.
"""
from __future__ import annotations

import hashlib
import ipaddress
import socket
import struct

import numpy as np

from ..community_id import _hash as _cid_hash
from . import kernel as K
from .reference import LIKELY_TCP, LIKELY_UDP, PROTO_NAMES, make_uid

_LIKELY_TCP = np.zeros(65536, dtype=np.bool_)
_LIKELY_TCP[list(LIKELY_TCP)] = True
_LIKELY_UDP = np.zeros(65536, dtype=np.bool_)
_LIKELY_UDP[list(LIKELY_UDP)] = True
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _addr(ver: int, hi: int, lo: int) -> str:
    if ver == 4:
        return socket.inet_ntoa(struct.pack("!I", lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def _base62_uids(h1: np.ndarray, h2: np.ndarray) -> list:
    n = len(h1)
    out = np.empty((n, 18), dtype=np.uint8)
    out[:, 0] = ord("C")
    a = h1.copy()
    b = h2.copy()
    sixty_two = np.uint64(62)
    for k in range(1, 11):
        out[:, k] = _B62[(a % sixty_two).astype(np.int64)]
        a //= sixty_two
    for k in range(11, 18):
        out[:, k] = _B62[(b % sixty_two).astype(np.int64)]
        b //= sixty_two
    raw = out.tobytes()
    return [raw[i * 18:(i + 1) * 18].decode("ascii") for i in range(n)]


def _hash_cols(cols) -> np.ndarray:
    h = np.zeros(len(cols[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(cols):
            h ^= c.astype(np.uint64) + _MIX[i % 3] + (h << np.uint64(6)) + (h >> np.uint64(2))
            h *= _MIX[(i + 1) % 3]
    return h


class FlowTable:
    """Flow state in numpy arrays, driven by the compiled kernel.

    ``process(decoded_batch)`` returns the flow records that ended during the batch;
    ``flush()`` ends the rest.  ``weirds`` collects (ts, uid, name, detail).
    """

    def __init__(self, site=None, max_flows: int = 1_000_000, sweep_interval: float = 10.0,
                 capacity: int = 65536):
        self.site = site
        self.max_flows = max_flows
        self.sweep_interval = sweep_interval
        self.cap = 0
        self._alloc(capacity)
        self.counters = np.zeros(3, dtype=np.int64)   # next_new_fid, serial, n_ended
        self.free: list = []
        self.key_fid: dict = {}
        self.fid_key: dict = {}
        self.services: dict = {}
        self.tparents: dict = {}
        self.tunnel_uids: dict = {}
        self.weirds: list = []
        self.evicted = 0
        self.now = 0.0
        self.last_sweep = None
        self.last_row_fid = np.zeros(0, dtype=np.int64)
        self.last_row_orig = np.zeros(0, dtype=np.bool_)

    # -- storage ------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        old = self.cap
        def grow(name, shape, dtype):
            new = np.zeros((cap,) + shape, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        grow("FI", (K.NFI,), np.int64)
        grow("FF", (K.NFF,), np.float64)
        grow("ADDR", (4,), np.uint64)
        grow("EP", (2, K.NE), np.int64)
        grow("HOLES", (2, K.MAXH, 2), np.int64)
        grow("HIST", (K.HMAX,), np.uint8)
        r = np.full(cap, -1, dtype=np.int64)
        if old:
            r[:old] = self.redirect
        self.redirect = r
        self.ended = np.zeros(cap, dtype=np.int64)
        self.ended_ts = np.zeros(cap, dtype=np.float64)
        self.cap = cap

    def _ensure(self, extra: int) -> None:
        need = int(self.counters[0]) + extra + 16
        if need > self.cap:
            cap = self.cap
            while cap < need:
                cap *= 2
            self._alloc(cap)

    def _new_fid(self) -> int:
        if self.free:
            return self.free.pop()
        f = int(self.counters[0])
        self.counters[0] = f + 1
        return f

    # -- identity -------------------------------------------------------------------
    def uids(self, fids: np.ndarray) -> list:
        """Deterministic connection uids ('C' + 17 base62 chars) from key, start time and serial."""
        FI = self.FI[fids]
        AD = self.ADDR[fids]
        a_first = (AD[:, 0] < AD[:, 2]) | ((AD[:, 0] == AD[:, 2]) & (
            (AD[:, 1] < AD[:, 3]) | ((AD[:, 1] == AD[:, 3]) & (FI[:, K.OPORT] <= FI[:, K.RPORT]))))
        cols = [FI[:, K.PROTO], FI[:, K.VLAN], FI[:, K.IVLAN],
                np.where(a_first, AD[:, 0], AD[:, 2]), np.where(a_first, AD[:, 1], AD[:, 3]),
                np.where(a_first, FI[:, K.OPORT], FI[:, K.RPORT]),
                np.where(a_first, AD[:, 2], AD[:, 0]), np.where(a_first, AD[:, 3], AD[:, 1]),
                np.where(a_first, FI[:, K.RPORT], FI[:, K.OPORT]),
                self.FF[fids, K.TS].view(np.int64), FI[:, K.SERIAL]]
        h1 = _hash_cols(cols)
        h2 = _hash_cols(cols[::-1] + [h1])
        return _base62_uids(h1, h2)

    def uid(self, f: int) -> str:
        return self.uids(np.array([f], dtype=np.int64))[0]

    def _tunnel_uid(self, spec) -> str:
        uid = self.tunnel_uids.get(spec)
        if uid is None:
            uid = make_uid(f"tunnel|{spec!r}")
            self.tunnel_uids[spec] = uid
        return uid

    # -- main loop ---------------------------------------------------------------------
    def process(self, db) -> list:
        c = db.cols
        n = len(db)
        records: list = []
        if n == 0:
            for ts, name, detail, _r in db.weirds:
                self.weirds.append((ts, None, name, detail))
            return records
        shi, slo, dhi, dlo = c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"]
        sp = c["sport"].astype(np.int64)
        dp = c["dport"].astype(np.int64)
        af = (shi < dhi) | ((shi == dhi) & ((slo < dlo) | ((slo == dlo) & (sp <= dp))))
        ahi = np.where(af, shi, dhi)
        alo = np.where(af, slo, dlo)
        ap = np.where(af, sp, dp)
        bhi = np.where(af, dhi, shi)
        blo = np.where(af, dlo, slo)
        bp = np.where(af, dp, sp)
        proto = c["proto"].astype(np.int64)
        vlan = c["vlan"].astype(np.int64)
        ivlan = c["inner_vlan"].astype(np.int64)
        kcols = (proto, vlan, ivlan, ahi, alo, ap, bhi, blo, bp)
        h = _hash_cols(kcols)
        uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
        if not all(np.array_equal(col, col[first][inv]) for col in kcols):
            # A 64-bit hash collision within the batch: fall back to exact keys.
            keys = list(zip(*(col.tolist() for col in kcols)))
            uk = sorted(set(keys))
            pos = {k: j for j, k in enumerate(uk)}
            inv = np.fromiter((pos[k] for k in keys), dtype=np.int64, count=n)
            ukeys = uk
        else:
            ukeys = list(zip(*(col[first].tolist() for col in kcols)))
        self._ensure(2 * n + len(ukeys))
        if len(self.key_fid) + len(ukeys) > self.max_flows:
            self._evict(float(c["ts"][0]), records)
        key_fid = self.key_fid
        ufid = np.empty(len(ukeys), dtype=np.int64)
        for j, k in enumerate(ukeys):
            f = key_fid.get(k)
            if f is None:
                f = self._new_fid()
                key_fid[k] = f
                self.fid_key[f] = k
            ufid[j] = f
        fid_rows = ufid[inv]
        row_fid = np.empty(n, dtype=np.int64)
        row_orig = np.empty(n, dtype=np.bool_)
        self.counters[2] = 0
        K.process(c["ts"], c["ver"].astype(np.int64), proto, vlan, ivlan, c["flags"].astype(np.int64),
                  c["seq"], c["ack"], c["win"].astype(np.int64), c["ip_len"], c["pay_len"], c["wire_len"],
                  shi, slo, sp, dhi, dlo, dp, af, fid_rows,
                  self.FI, self.FF, self.ADDR, self.EP, self.HOLES, self.HIST, self.redirect, self.counters,
                  self.ended, self.ended_ts, _LIKELY_TCP, _LIKELY_UDP, row_fid, row_orig)
        self.last_row_fid = row_fid
        self.last_row_orig = row_orig
        # Tunnel parents and decode weirds refer to rows: resolve them before flows are emitted.
        for i, (kind, parent) in db.tunnels.items():
            child = int(row_fid[i])
            if isinstance(parent, int):
                pf = int(row_fid[parent])
                puid = self.uid(pf)
                svc = self.services.setdefault(pf, [])
                if kind not in svc:
                    svc.append(kind)
            else:
                puid = self._tunnel_uid(parent)
            self.tparents.setdefault(child, set()).add(puid)
        for ts, name, detail, r in db.weirds:
            self.weirds.append((ts, self.uid(int(row_fid[r])) if r >= 0 else None, name, detail))
        self._collect_ended(records)
        self.now = float(c["ts"][-1])
        if self.last_sweep is None:
            self.last_sweep = self.now
        elif self.now - self.last_sweep >= self.sweep_interval:
            self.sweep(self.now, records)
        return records

    def _collect_ended(self, records: list) -> None:
        k = int(self.counters[2])
        if not k:
            return
        fids = self.ended[:k].copy()
        ends = self.ended_ts[:k].copy()
        self.counters[2] = 0
        records.extend(self._records(fids, ends))
        # Re-point keys whose connection was replaced inside the batch; free the ended slots.
        for f in fids.tolist():
            key = self.fid_key.pop(f, None)
            nf = f
            while self.redirect[nf] >= 0:
                nxt = int(self.redirect[nf])
                self.redirect[nf] = -1
                nf = nxt
            if key is not None:
                if nf != f and self.FI[nf, K.ACTIVE] == 1:
                    self.key_fid[key] = nf
                    self.fid_key[nf] = key
                elif self.key_fid.get(key) == f:
                    del self.key_fid[key]
            self.free.append(f)

    def sweep(self, now: float, records: list, force: bool = False) -> None:
        """End every flow whose timers have run out by ``now``."""
        self.last_sweep = now
        self.counters[2] = 0
        K.sweep(self.FI, self.FF, self.EP, int(self.counters[0]), now, self.ended, self.ended_ts, self.counters,
                force)
        self._collect_ended(records)

    def _evict(self, now: float, records: list) -> None:
        self.sweep(now, records)
        if len(self.key_fid) <= self.max_flows * 0.9:
            return
        hw = int(self.counters[0])
        active = np.nonzero(self.FI[:hw, K.ACTIVE] == 1)[0]
        k = max(1, len(active) // 10)
        victims = active[np.argsort(self.FF[active, K.LAST], kind="stable")[:k]]
        for j, f in enumerate(victims.tolist()):
            self.FI[f, K.ACTIVE] = 0
            self.FI[f, K.ENDED_BY] = 3
            self.ended[j] = f
            self.ended_ts[j] = self.FF[f, K.LAST]
        self.counters[2] = k
        self.evicted += k
        self.weirds.append((now, None, "flow.table_full", f"evicted {k} least recently active flows"))
        self._collect_ended(records)

    def flush(self) -> list:
        records: list = []
        self.sweep(self.now, records, force=True)
        return records

    # -- records ------------------------------------------------------------------------
    def _records(self, fids: np.ndarray, ends: np.ndarray) -> list:
        n = len(fids)
        out = np.zeros((n, 4), dtype=np.int64)
        K.finalize(self.FI, self.EP, self.HOLES, self.HIST, fids, out)
        FI = self.FI[fids]
        FF = self.FF[fids]
        AD = self.ADDR[fids]
        HI = self.HIST[fids]
        uids = self.uids(fids)
        ver = FI[:, K.VER]
        proto = FI[:, K.PROTO].tolist()
        oh = self._addr_strings(ver, AD[:, 0], AD[:, 1])
        rh = self._addr_strings(ver, AD[:, 2], AD[:, 3])
        site = self.site
        if site is not None:
            lo_l = [site.is_local(a) for a in oh]
            lr_l = [site.is_local(a) for a in rh]
        else:
            lo_l = lr_l = [None] * n
        ts_l = FF[:, K.TS].tolist()
        dur_a = FF[:, K.LAST] - FF[:, K.TS]
        dur_l = dur_a.tolist()
        op_l = FI[:, K.OPORT].tolist()
        rp_l = FI[:, K.RPORT].tolist()
        ob_l, rb_l, miss_l, st_l = (out[:, k].tolist() for k in range(4))
        opk, rpk, oip, rip, ol2, rl2 = (FI[:, k].tolist() for k in (K.OPK, K.RPK, K.OIP, K.RIP, K.OL2, K.RL2))
        vlan_l = FI[:, K.VLAN].tolist()
        ivlan_l = FI[:, K.IVLAN].tolist()
        hl_l = FI[:, K.HIST_LEN].tolist()
        wb_l = FI[:, K.WEIRDS].tolist()
        last_l = FF[:, K.LAST].tolist()
        hist_raw = HI.tobytes()
        hw = K.HMAX
        recs = []
        services = self.services
        tparents = self.tparents
        for j, f in enumerate(fids.tolist()):
            pr = proto[j]
            dur = dur_l[j]
            if dur > 0:
                dur = round(dur, 6)
                ob, rb = ob_l[j], rb_l[j]
            else:
                dur = ob = rb = None
            lo_, lr_ = lo_l[j], lr_l[j]
            hl = hl_l[j]
            svc = services.pop(f, None) if services else None
            tp = tparents.pop(f, None) if tparents else None
            uid = uids[j]
            if wb_l[j]:
                for bit, (name, detail) in K.WEIRD_NAMES.items():
                    if wb_l[j] & bit:
                        self.weirds.append((last_l[j], uid, name, detail))
            recs.append({
                "ts": ts_l[j],
                "uid": uid,
                "id.orig_h": oh[j],
                "id.orig_p": op_l[j],
                "id.resp_h": rh[j],
                "id.resp_p": rp_l[j],
                "proto": PROTO_NAMES.get(pr, "unknown_transport"),
                "service": ",".join(svc) if svc else None,
                "duration": dur,
                "orig_bytes": ob,
                "resp_bytes": rb,
                "conn_state": K.STATE_NAMES[st_l[j]],
                "local_orig": lo_,
                "local_resp": lr_,
                "missed_bytes": miss_l[j],
                "history": hist_raw[j * hw:j * hw + hl].decode("ascii") if hl else None,
                "orig_pkts": opk[j],
                "orig_ip_bytes": oip[j],
                "resp_pkts": rpk[j],
                "resp_ip_bytes": rip[j],
                "tunnel_parents": sorted(tp) if tp else [],
                "ip_proto": pr,
                "community_id": _cid(pr, ver[j], AD[j], op_l[j], rp_l[j]),
                "vlan": vlan_l[j] if vlan_l[j] >= 0 else None,
                "inner_vlan": ivlan_l[j] if ivlan_l[j] >= 0 else None,
                "direction": "internal" if lo_ and lr_ else "outbound" if lo_ else "inbound" if lr_ else "external",
                "orig_l2_bytes": ol2[j],
                "resp_l2_bytes": rl2[j],
            })
        return recs

    def _addr_strings(self, ver: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> list:
        cache = self._addr_cache
        if len(cache) > 200_000:
            cache.clear()
        out = []
        for v, h, l in zip(ver.tolist(), hi.tolist(), lo.tolist()):
            k = (v, h, l)
            s = cache.get(k)
            if s is None:
                s = _addr(v, h, l)
                cache[k] = s
            out.append(s)
        return out

    _addr_cache: dict = {}


_SEED0 = b"\x00\x00"


def _cid(proto: int, ver: int, ad, sport: int, dport: int) -> str:
    """Community ID v1 (seed 0) from the packed addresses we already hold."""
    if ver == 4:
        a = (int(ad[1]) & 0xFFFFFFFF).to_bytes(4, "big")
        b = (int(ad[3]) & 0xFFFFFFFF).to_bytes(4, "big")
    else:
        a = ((int(ad[0]) << 64) | int(ad[1])).to_bytes(16, "big")
        b = ((int(ad[2]) << 64) | int(ad[3])).to_bytes(16, "big")
    if proto in (1, 6, 17, 58, 132):
        return _cid_hash(_SEED0, proto, a, b, sport, dport)
    return _cid_hash(_SEED0, proto, a, b, None, None)
