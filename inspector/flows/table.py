"""The flow table: decoded rows -> bidirectional connections with Zeek conn.log semantics.

Keys are Zeek's default five-tuple in a canonical order, so both directions meet
(VLAN tags are recorded from a connection's first packet; they do not separate
connections, as in Zeek without its ``vlan_fivetuple`` connection key).  Per batch
the keys are hashed with numpy and looked up once per distinct key; the rows then run through the compiled kernel
(``kernel.process``) in packet order.  Connections end on Zeek's timers replayed
in packet time (see ``kernel``); the table is bounded by ``max_flows``: beyond
it the least recently active tenth is evicted (``flow.table_full`` weird).

``reference.PyFlowTable`` is the same semantics in plain Python; tests require
both to give identical records.

Later stages see the table through a small public surface: an *observer*
(protocol dispatch) gets each batch's rows with their flow ids (``rows``) and is
told which flows end before their records are built (``ending``), so it can
finish its per-connection state and add the services it confirmed
(``add_services``); it reads connections through ``uids``, ``endpoints_many``
and ``first_seen``, never the arrays.  Ended flows come out as a ``FlowBatch``:
the conn.log records plus the per-flow payload byte counts later stages need
(Zeek leaves ``orig_bytes``/``resp_bytes`` unset on zero-length connections).
The table adds no column of its own beyond conn.log's: naming, enrichment and
content fields are added by the stages that own them.
"""
from __future__ import annotations

import base64
import hashlib

import numpy as np

from ..community_id import hash_tuple as _cid_hash
from ..site import DIRECTIONS, direction_index
from . import kernel as K
from . import roles
from .reference import LIKELY_TCP, LIKELY_UDP, PROTO_NAMES, make_uid, tunnel_uid
from .reference import addr_str as _addr

_LIKELY_TCP = np.zeros(65536, dtype=np.bool_)
_LIKELY_TCP[list(LIKELY_TCP)] = True
_LIKELY_UDP = np.zeros(65536, dtype=np.bool_)
_LIKELY_UDP[list(LIKELY_UDP)] = True
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


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


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 column (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def pair_owner(addr: np.ndarray, n: int) -> np.ndarray:
    """Worker index in ``0..n-1`` per row of ``addr`` (columns: orig hi, orig lo, resp hi, resp lo):
    a hash of the unordered address pair, so swapping the two sides gives the same worker."""
    a = _mix64(_mix64(addr[:, 0]) ^ addr[:, 1])
    b = _mix64(_mix64(addr[:, 2]) ^ addr[:, 3])
    return (_mix64(a ^ b) % np.uint64(n)).astype(np.int64)


class FlowBatch(list):
    """Flow records (dicts in conn.log field order) that ended together, with per-record
    payload byte counts (``orig_payload``/``resp_payload``, ints, set even where the
    record leaves ``orig_bytes``/``resp_bytes`` unset)."""

    def __init__(self, records=(), orig_payload=(), resp_payload=(), seq=()):
        super().__init__(records)
        self.orig_payload = list(orig_payload)
        self.resp_payload = list(resp_payload)
        self.seq = list(seq)     # each record's place among every flow the table ended (see FlowTable.share)

    def add(self, other: "FlowBatch") -> None:
        """Append another batch (records and their byte counts)."""
        self.extend(other)
        self.orig_payload.extend(other.orig_payload)
        self.resp_payload.extend(other.resp_payload)
        self.seq.extend(other.seq)


class FlowTable:
    """Flow state in numpy arrays, driven by the compiled kernel.

    ``process(decoded_batch)`` returns the flow records that ended during the batch (a
    ``FlowBatch``); ``flush()`` ends the rest.  ``weirds`` collects (ts, uid, name, detail).

    ``observer`` (optional) is told about rows and ending flows::

        observer.rows(table, decoded_batch, row_fid, row_orig, row_new)
        observer.ending(table, fids, last_ts)   # before the records of ``fids`` are built

    Flow ids are slots: one is reused only after ``ending`` reported it.

    ``share=(k, n)``: this table is worker ``k`` of ``n`` (``inspector.parallel``).  It still
    tracks every flow, so flow state, uids (their serial counts every flow), tunnel parents,
    timers and evictions are those of a single table; but only the flows it owns (``OWN``: a
    hash of the unordered address pair, so an FTP data channel stays with its control
    connection) reach the observer and get records, and only worker 0 reports the weirds no
    flow owns.  Each record's ``seq`` (its place in the ended order of all flows) lets the
    parent interleave the workers' records in the order one table would have produced.
    """

    def __init__(self, site=None, max_flows: int = 1_000_000, sweep_interval: float = 10.0,
                 capacity: int = 32768, observer=None, share: tuple | None = None):
        self.site = site
        self.share = share
        self.ended_total = 0       # flows ended so far, all of them (the next record's ``seq``)
        self.max_flows = max_flows
        self.sweep_interval = sweep_interval
        self.cap = 0
        # next_new_fid, serial, n_ended, n_free, n_in_table, n_tombstones
        self.counters = np.zeros(6, dtype=np.int64)
        self._alloc(capacity)
        self.services: dict = {}
        self.tparents: dict = {}
        self.tunnel_uids: dict = {}
        self._addr_cache: dict = {}
        self.weirds: list = []
        self.evicted = 0
        self.now = 0.0
        self.last_sweep = None
        self.observer = observer   # protocol dispatch (see the class docstring), or None
        self.last_row_fid = np.zeros(0, dtype=np.int64)
        self.last_row_orig = np.zeros(0, dtype=np.bool_)
        # Where each flow's first packet came from: CAP[fid] indexes capture_names (-1: unnamed
        # source such as a live interface).  Set column-wise per kernel run, never per packet.
        self.capture_names: list = []
        self.capture_index = -1
        # Optional ``row_hook(lo, hi, row_fid)``: called after each kernel run over rows lo..hi-1,
        # while those rows' flow ids still name the flows they went to (a slot freed afterwards
        # may be reused by a later row of the same batch).  Used by carving to map packets to flows.
        self.row_hook = None

    # -- storage ------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        old = self.cap

        def grow(name, shape, dtype, fill=0):
            new = np.full((cap,) + shape, fill, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        grow("FI", (K.NFI,), np.int64)
        grow("FF", (K.NFF,), np.float64)
        grow("ADDR", (4,), np.uint64)
        grow("EP", (2, K.NE), np.int64)
        grow("HOLES", (2, K.MAXH, 2), np.int64)
        grow("HIST", (K.HMAX,), np.uint8)
        grow("KEY", (9,), np.uint64)
        grow("SLOT", (), np.int64, -1)
        grow("free", (), np.int64)
        grow("CAP", (), np.int32, -1)
        grow("OWN", (), np.bool_, True)
        self.ended = np.zeros(cap, dtype=np.int64)
        self.ended_ts = np.zeros(cap, dtype=np.float64)
        self.cap = cap
        self.HT = np.full(4 * cap, -1, dtype=np.int64)
        self.counters[5] = 0
        if self.counters[0]:         # no flow yet: the new table is empty as it is (and numba stays unloaded)
            K.ht_rebuild(self.HT, self.KEY, self.SLOT, self.FI, int(self.counters[0]))

    def _maybe_rehash(self) -> None:
        if self.counters[5] > len(self.HT) // 4:
            self.counters[5] = 0
            K.ht_rebuild(self.HT, self.KEY, self.SLOT, self.FI, int(self.counters[0]))

    def set_capture(self, name: str | None) -> None:
        """Name the source of the packets that follow (a capture file as given); flows starting
        from now on carry it as ``capture``."""
        if name is None:
            self.capture_index = -1
            return
        self.capture_names.append(name)
        self.capture_index = len(self.capture_names) - 1

    def capture_of(self, f: int) -> str | None:
        """The capture holding the first packet of flow ``f`` (None for an unnamed source)."""
        i = int(self.CAP[f])
        return self.capture_names[i] if i >= 0 else None

    def active_flows(self) -> int:
        return int(self.counters[4])

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

    def endpoints_many(self, fids: np.ndarray) -> list:
        """[(orig_h, orig_p, resp_h, resp_p)] for many connections."""
        FI = self.FI[fids]
        AD = self.ADDR[fids]
        ver = FI[:, K.VER]
        oh = self._addr_strings(ver, AD[:, 0], AD[:, 1])
        rh = self._addr_strings(ver, AD[:, 2], AD[:, 3])
        return list(zip(oh, FI[:, K.OPORT].tolist(), rh, FI[:, K.RPORT].tolist()))

    def first_seen(self, fids: np.ndarray) -> list:
        """Start time (first packet, epoch seconds) of each connection."""
        return self.FF[fids, K.TS].tolist()

    def add_services(self, f: int, services) -> None:
        """Services confirmed on connection ``f`` by a later stage, appended (once each) after
        the ones the table knows (tunnel encapsulations); call before the flow's record is built."""
        svc = self.services.setdefault(f, [])
        for s in services:
            if s not in svc:
                svc.append(s)

    def endpoints(self, f: int) -> tuple:
        """(orig_h, orig_p, resp_h, resp_p) of an active connection, as strings and ints."""
        fi = self.FI[f]
        a = self.ADDR[f]
        ver = int(fi[K.VER])
        return (_addr(ver, int(a[0]), int(a[1])), int(fi[K.OPORT]), _addr(ver, int(a[2]), int(a[3])),
                int(fi[K.RPORT]))

    def _tunnel_uid(self, spec) -> str:
        return tunnel_uid(self.tunnel_uids, spec)

    # -- main loop ---------------------------------------------------------------------
    def process(self, db) -> FlowBatch:
        c = db.cols
        n = len(db)
        records = FlowBatch()
        if n == 0:
            if self._reports_unowned():
                for ts, name, detail, _r in db.weirds:
                    self.weirds.append((ts, None, name, detail))
            return records
        if self.active_flows() + n > self.max_flows:
            self._evict(float(c["ts"][0]), records)
        self._maybe_rehash()
        if len(self.ended) < self.cap + n:
            self.ended = np.zeros(self.cap + n, dtype=np.int64)
            self.ended_ts = np.zeros(self.cap + n, dtype=np.float64)
        row_fid = np.empty(n, dtype=np.int64)
        row_orig = np.empty(n, dtype=np.bool_)
        row_new = np.zeros(n, dtype=np.bool_)
        args = (c["ts"], c["ver"].astype(np.int64), c["proto"].astype(np.int64), c["vlan"].astype(np.int64),
                c["inner_vlan"].astype(np.int64), c["flags"].astype(np.int64), c["seq"], c["ack"],
                c["win"].astype(np.int64), c["ip_len"], c["pay_len"], c["wire_len"],
                c["src_hi"], c["src_lo"], c["sport"].astype(np.int64), c["dst_hi"], c["dst_lo"],
                c["dport"].astype(np.int64), roles.hints(db))
        self.counters[2] = 0
        start = 0
        while True:
            lo = start
            start = K.process(start, *args, self.FI, self.FF, self.ADDR, self.EP, self.HOLES, self.HIST,
                              self.KEY, self.SLOT, self.HT, self.free, self.counters, self.ended, self.ended_ts,
                              _LIKELY_TCP, _LIKELY_UDP, row_fid, row_orig, row_new, self.max_flows)
            hi = min(start, n)
            seg = row_fid[lo:hi]
            self.CAP[seg[row_new[lo:hi]]] = self.capture_index
            if self.row_hook is not None:
                self.row_hook(lo, hi, row_fid)
            if start >= n:
                break
            # A new flow is needed at row ``start``.  Flows that ended in this batch keep their slots
            # until the batch is through (the application layer still gets their rows), so: evict
            # when the bound is reached, grow when no slot is free, and go on from the row reached.
            # The arrays never exceed max_flows plus one batch of new flows.
            if self.active_flows() >= self.max_flows:
                self._mark_evictions(float(c["ts"][start]))
            if self.counters[3] == 0 and int(self.counters[0]) >= self.cap:
                k = int(self.counters[2])
                ended, ended_ts = self.ended[:k].copy(), self.ended_ts[:k].copy()
                self._alloc(self.cap * 2)
                self.ended = np.zeros(self.cap + n, dtype=np.int64)
                self.ended_ts = np.zeros(self.cap + n, dtype=np.float64)
                self.ended[:k], self.ended_ts[:k] = ended, ended_ts
        self.last_row_fid = row_fid
        self.last_row_orig = row_orig
        if self.share is not None:
            nf = row_fid[row_new]
            if len(nf):
                self.OWN[nf] = self.owner(nf) == self.share[0]
        if self.observer is not None:
            self.observer.rows(self, db, row_fid, row_orig, row_new)
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
            if r >= 0 and self.OWN[row_fid[r]] or r < 0 and self._reports_unowned():
                self.weirds.append((ts, self.uid(int(row_fid[r])) if r >= 0 else None, name, detail))
        self._collect_ended(records)
        self.now = float(c["ts"][-1])
        if self.last_sweep is None:
            self.last_sweep = self.now
        elif self.now - self.last_sweep >= self.sweep_interval:
            self.sweep(self.now, records)
        return records

    def _collect_ended(self, records: FlowBatch) -> None:
        k = int(self.counters[2])
        if not k:
            return
        fids = all_fids = self.ended[:k].copy()
        ends = self.ended_ts[:k].copy()
        self.counters[2] = 0
        seq = np.arange(self.ended_total, self.ended_total + k, dtype=np.int64)
        self.ended_total += k
        if self.share is not None:
            own = self.OWN[fids]
            if not own.all():
                self._forget(fids[~own], ends[~own])
                fids, ends, seq = fids[own], ends[own], seq[own]
        batch = self._records(fids, ends) if len(fids) else FlowBatch()
        batch.seq = seq.tolist()
        records.add(batch)
        nf = int(self.counters[3])
        self.free[nf:nf + k] = all_fids
        self.counters[3] = nf + k

    def release(self) -> None:
        """Drop the per-flow arrays (the run is over; counters and ``evicted`` stay readable)."""
        for name in ("FI", "FF", "ADDR", "EP", "HOLES", "HIST", "KEY", "SLOT", "free", "CAP", "OWN", "HT",
                     "ended", "ended_ts"):
            arr = getattr(self, name)
            setattr(self, name, arr[:0].copy())
        self.cap = 0
        self.services.clear()
        self.tparents.clear()
        self._addr_cache.clear()

    def _reports_unowned(self) -> bool:
        """Weirds of no flow (capture, decoding without a flow, table full) are reported once."""
        return self.share is None or self.share[0] == 0

    def owner(self, fids: np.ndarray) -> np.ndarray:
        """The worker (of ``share[1]``) that owns each flow: a hash of its unordered address pair,
        the same whichever side sent the first packet."""
        return pair_owner(self.ADDR[fids], self.share[1])

    def _forget(self, fids: np.ndarray, ends: np.ndarray) -> None:
        """Flows another worker owns have ended: drop what was kept for their records."""
        if self.observer is not None:
            self.observer.ending(self, fids, ends.tolist())
        for f in fids.tolist():
            self.services.pop(f, None)
            self.tparents.pop(f, None)

    def sweep(self, now: float, records: FlowBatch, force: bool = False) -> None:
        """End every flow whose timers have run out by ``now``."""
        self.last_sweep = now
        self.counters[2] = 0
        if self.counters[0]:         # a table that never held a flow has nothing to end
            K.sweep(self.FI, self.FF, self.EP, self.HT, self.SLOT, int(self.counters[0]), now, self.ended,
                    self.ended_ts, self.counters, force)
        self._collect_ended(records)

    def _evict(self, now: float, records: FlowBatch) -> None:
        self.sweep(now, records)
        if self.active_flows() <= self.max_flows * 0.9:
            return
        self._mark_evictions(now)
        self._collect_ended(records)

    def _mark_evictions(self, now: float) -> None:
        """End the least recently active tenth of the active flows (at least one), appended to
        this batch's ended list; their records are built when the ended list is collected."""
        hw = int(self.counters[0])
        active = np.nonzero(self.FI[:hw, K.ACTIVE] == 1)[0]
        k = max(1, len(active) // 10)
        victims = active[np.argsort(self.FF[active, K.LAST], kind="stable")[:k]]
        j0 = int(self.counters[2])
        for j, f in enumerate(victims.tolist(), j0):
            self.FI[f, K.ACTIVE] = 0
            self.FI[f, K.ENDED_BY] = 3
            self.ended[j] = f
            self.ended_ts[j] = self.FF[f, K.LAST]
            self.HT[self.SLOT[f]] = -2
        k = len(victims)
        self.counters[4] -= k
        self.counters[5] += k
        self.counters[2] = j0 + k
        self.evicted += k
        if self._reports_unowned():
            self.weirds.append((now, None, "flow.table_full", f"evicted {k} least recently active flows"))

    def flush(self) -> FlowBatch:
        records = FlowBatch()
        self.sweep(self.now, records, force=True)
        return records

    # -- records ------------------------------------------------------------------------
    def _records(self, fids: np.ndarray, ends: np.ndarray) -> FlowBatch:
        """Flow records (dicts in conn.log field order) for ended flows, built column-wise."""
        n = len(fids)
        out = np.zeros((n, 4), dtype=np.int64)
        K.finalize(self.FI, self.EP, self.HOLES, self.HIST, fids, out)
        FI = self.FI[fids]
        FF = self.FF[fids]
        AD = self.ADDR[fids]
        ver = FI[:, K.VER]
        proto = FI[:, K.PROTO]
        oh = self._addr_strings(ver, AD[:, 0], AD[:, 1])
        rh = self._addr_strings(ver, AD[:, 2], AD[:, 3])
        lo_a = self._local(ver, AD[:, 0], AD[:, 1], oh)
        lr_a = self._local(ver, AD[:, 2], AD[:, 3], rh)
        go_a = self._group(ver, AD[:, 1], oh)
        gr_a = self._group(ver, AD[:, 3], rh)
        dur = FF[:, K.LAST] - FF[:, K.TS]
        pos = dur > 0
        # Zeek leaves duration and byte counts unset on zero-length connections.
        dur_l = _nullable(np.round(dur, 6), pos)
        ob_l = _nullable(out[:, 0], pos)
        rb_l = _nullable(out[:, 1], pos)
        if lo_a is None:
            lo_l = lr_l = [None] * n
            dir_l = ["external"] * n
        else:
            lo_l = lo_a.tolist()
            lr_l = lr_a.tolist()
            dir_l = _DIRECTIONS[direction_index(lo_a, lr_a, go_a, gr_a)].tolist()
        hl = FI[:, K.HIST_LEN]
        hist_raw = self.HIST[fids].tobytes()
        hw = K.HMAX
        hist_l = [hist_raw[j * hw:j * hw + k].decode("ascii") if k else None for j, k in enumerate(hl.tolist())]
        uids = self.uids(fids)
        if self.observer is not None:
            self.observer.ending(self, fids, FF[:, K.LAST].tolist())
        svc_l = [None] * n
        tp_l = None
        if self.services or self.tparents:
            tp_l = []
            for j, f in enumerate(fids.tolist()):
                svc = self.services.pop(f, None)
                if svc:
                    svc_l[j] = ",".join(svc)
                tp = self.tparents.pop(f, None)
                tp_l.append(sorted(tp) if tp else [])
        wb = FI[:, K.WEIRDS]
        for j in np.nonzero(wb)[0].tolist():
            for bit, (name, detail) in K.WEIRD_NAMES.items():
                if wb[j] & bit:
                    self.weirds.append((float(FF[j, K.LAST]), uids[j], name, detail))
        vlan = FI[:, K.VLAN]
        ivlan = FI[:, K.IVLAN]
        names = np.array(self.capture_names + [None], dtype=object)   # CAP -1 -> the trailing None
        cap_l = names[self.CAP[fids]].tolist()
        cols = (
            FF[:, K.TS].tolist(), uids, oh, FI[:, K.OPORT].tolist(), rh, FI[:, K.RPORT].tolist(),
            _PROTO_NAMES[np.minimum(proto, 256)].tolist(), svc_l, dur_l, ob_l, rb_l,
            _STATE_NAMES[out[:, 3]].tolist(), lo_l, lr_l, out[:, 2].tolist(), hist_l,
            FI[:, K.OPK].tolist(), FI[:, K.OIP].tolist(), FI[:, K.RPK].tolist(), FI[:, K.RIP].tolist(),
            tp_l if tp_l is not None else [[] for _ in range(n)], proto.tolist(),
            community_ids(proto, ver, AD, FI[:, K.OPORT], FI[:, K.RPORT]),
            _nullable(vlan, vlan >= 0), _nullable(ivlan, ivlan >= 0), dir_l,
            FI[:, K.OL2].tolist(), FI[:, K.RL2].tolist(), cap_l,
        )
        fields = _FIELDS
        return FlowBatch([dict(zip(fields, row)) for row in zip(*cols)], out[:, 0].tolist(), out[:, 1].tolist())

    def _local(self, ver, hi, lo, strings):
        """local_orig/local_resp as a bool array (vectorised for IPv4), or None without a site."""
        site = self.site
        if site is None:
            return None
        return _membership(ver, lo, strings, site.is_local_v4, site.is_local)

    def _group(self, ver, lo, strings):
        """Multicast/broadcast addresses (they never leave the site) as a bool array, or None without a site."""
        site = self.site
        if site is None:
            return None
        return _membership(ver, lo, strings, site.is_multicast_or_broadcast_v4, site.is_multicast_or_broadcast)

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


def community_ids(proto: np.ndarray, ver: np.ndarray, AD: np.ndarray, sport: np.ndarray,
                  dport: np.ndarray) -> list:
    """Community ID v1 (seed 0) for many flows: the hash input is assembled with numpy for
    TCP/UDP/SCTP; ICMP and portless protocols go through the scalar implementation."""
    n = len(proto)
    out = [None] * n
    v4 = ver == 4
    ported = (proto == 6) | (proto == 17) | (proto == 132)
    for is4, width in ((True, 4), (False, 16)):
        sel = np.nonzero(ported & (v4 if is4 else ~v4))[0]
        if len(sel) == 0:
            continue
        if is4:
            a = (AD[sel, 1] & np.uint64(0xFFFFFFFF)).astype(">u4").view(np.uint8).reshape(-1, 4)
            b = (AD[sel, 3] & np.uint64(0xFFFFFFFF)).astype(">u4").view(np.uint8).reshape(-1, 4)
            a_lt = AD[sel, 1] < AD[sel, 3]
            a_eq = AD[sel, 1] == AD[sel, 3]
        else:
            a = np.ascontiguousarray(AD[sel, 0:2]).astype(">u8").view(np.uint8).reshape(-1, 16)
            b = np.ascontiguousarray(AD[sel, 2:4]).astype(">u8").view(np.uint8).reshape(-1, 16)
            a_lt = (AD[sel, 0] < AD[sel, 2]) | ((AD[sel, 0] == AD[sel, 2]) & (AD[sel, 1] < AD[sel, 3]))
            a_eq = (AD[sel, 0] == AD[sel, 2]) & (AD[sel, 1] == AD[sel, 3])
        sp = sport[sel]
        dp = dport[sel]
        keep = a_lt | (a_eq & (sp < dp))
        first = np.where(keep[:, None], a, b)
        second = np.where(keep[:, None], b, a)
        p1 = np.where(keep, sp, dp).astype(">u2").view(np.uint8).reshape(-1, 2)
        p2 = np.where(keep, dp, sp).astype(">u2").view(np.uint8).reshape(-1, 2)
        pr = np.zeros((len(sel), 2), dtype=np.uint8)
        pr[:, 0] = proto[sel]
        m = np.ascontiguousarray(np.hstack([np.zeros((len(sel), 2), dtype=np.uint8), first, second, pr, p1, p2]))
        raw = m.tobytes()
        w = m.shape[1]
        sha1 = hashlib.sha1
        b64 = base64.b64encode
        for j, i in enumerate(sel.tolist()):
            out[i] = "1:" + b64(sha1(raw[j * w:(j + 1) * w], usedforsecurity=False).digest()).decode("ascii")
    for i in np.nonzero(~ported)[0].tolist():
        out[i] = _cid(int(proto[i]), int(ver[i]), AD[i], int(sport[i]), int(dport[i]))
    return out


_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
           "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history",
           "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto",
           "community_id", "vlan", "inner_vlan", "direction", "orig_l2_bytes", "resp_l2_bytes", "capture")
_DIRECTIONS = np.array(DIRECTIONS, dtype=object)
_STATE_NAMES = np.array(K.STATE_NAMES, dtype=object)
_PROTO_NAMES = np.array([PROTO_NAMES.get(i, "unknown_transport") for i in range(257)], dtype=object)


def _membership(ver, lo, strings, test_v4, test) -> np.ndarray:
    """A site membership test over packed addresses: vectorised for IPv4 (``test_v4`` on host-order uint32),
    per address string (``test``) for IPv6."""
    res = np.zeros(len(ver), dtype=np.bool_)
    v4 = ver == 4
    if v4.any():
        res[v4] = test_v4((lo[v4] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    for j in np.nonzero(~v4)[0].tolist():
        res[j] = test(strings[j])
    return res


def _nullable(values: np.ndarray, present: np.ndarray) -> list:
    out = values.tolist()
    if not present.all():
        for j in np.nonzero(~present)[0].tolist():
            out[j] = None
    return out


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
