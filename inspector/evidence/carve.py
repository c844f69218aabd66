"""Carving: exactly the packets of chosen connections, read back from the scan's captures.

Packets are mapped to connections the way the scan mapped them, not by a 5-tuple filter: the
captures named in the scan's output (flows.jsonl ``capture``, stats.json ``files``) are re-read
and re-decoded with inspector's own ``Decoder`` and ``FlowTable``, so VLAN tags, tunnels
(a tunnelled connection's frames carry their outer headers), fragments (a reassembled
datagram brings the frames of all its fragments) and connection reuse come out as in the
scan.  A replayed flow is the scanned connection when its key (addresses, ports, IP
protocol, VLANs) and its start time (the exact float of flows.jsonl ``ts``) agree;
that does not depend on which other files were replayed before, so only the files from the
earliest selected connection's capture on are read, and reading stops once every selected
connection has ended.  Each file's packet count is checked against stats.json: a capture that
changed since the scan is an error, never a silently different slice.

The slice is pcapng written with dpkt's writer: one interface per (source capture, link type)
with nanosecond timestamps taken from the original record headers (pcap) or blocks (pcapng),
original lengths kept, and an ``opt_comment`` on the first packet of each connection naming its
uid, what asked for it (incident, alert) and why it is there (FTP data channel, DNS answer).
"""
from __future__ import annotations

import io
import os
import struct
import sys
from dataclasses import dataclass, field

import numpy as np

from . import EvidenceError
from .scandir import ScanDir, Selection

#: Linktype -> name, for messages and the explanation (pcap LINKTYPE_* values).
LINKTYPE_NAMES = {0: "NULL", 1: "ETHERNET", 12: "RAW", 101: "RAW", 108: "LOOP", 113: "LINUX_SLL", 276: "LINUX_SLL2"}


@dataclass
class CarvedPacket:
    order: tuple                 # (file position in the scan, packet number in the file)
    capture: str                 # as named in the scan's output
    linktype: int
    ts_ns: int
    wirelen: int
    data: bytes
    uids: list = field(default_factory=list)   # selected connections this frame belongs to

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


@dataclass
class CarveResult:
    packets: list                                  # CarvedPacket, in capture order
    counts: dict                                   # uid -> packets carved
    first: dict                                    # uid -> index in packets of its first packet
    captures: list                                 # captures read (as named in the scan)
    resolved: dict                                 # capture as named -> path read


def resolve_capture(name: str, scan_dir: str, capture_root: str | None = None) -> str:
    """The file to read for a capture named in a scan's output, or EvidenceError (one line).

    Tried in order: ``--capture-root``/name and ``--capture-root``/basename when a root is given,
    the name as given (relative to the current directory), then relative to the parent of the
    scan's output folder (scans are usually run next to their captures).
    """
    if name in (None, "", "-"):
        raise EvidenceError("a selected connection came from standard input or a live interface: "
                            "its packets cannot be read back")
    cands = []
    if capture_root:
        cands += [os.path.join(capture_root, name), os.path.join(capture_root, os.path.basename(name))]
    cands.append(name)
    if not os.path.isabs(name):
        cands.append(os.path.join(os.path.dirname(os.path.abspath(scan_dir)), name))
    for c in cands:
        if os.path.isfile(c):
            return c
    hint = " (give --capture-root DIR to say where the captures are now)" if not capture_root else ""
    raise EvidenceError(f"capture {name} not found: moved or deleted since the scan{hint}")


class _Clock:
    """Exact nanosecond timestamps of one capture's packets, from their record headers."""

    def __init__(self, reader):
        self.reader = reader
        from ..ingest import PCAP_MAGICS
        magic = reader.stream.peek(4)
        self.pcap = PCAP_MAGICS.get(bytes(magic)) if reader.kind == "pcap" else None

    def ns(self, buf, off: int, ts: float) -> int:
        approx = int(round(ts * 1e6)) * 1000
        try:
            if self.pcap is not None:
                endian, tsres = self.pcap
                sec, frac = struct.unpack_from(endian + "II", buf, off - 16)
                ns = sec * 1_000_000_000 + (frac * 1000 if tsres == 1e-6 else frac)
            else:
                ns = self._pcapng(buf, off)
        except (struct.error, IndexError, ValueError):
            ns = None
        if ns is None or abs(ns - approx) > 1_000_000:   # not the packet's own header: trust the float
            return approx
        return ns

    def _pcapng(self, buf, off: int):
        r = self.reader
        e = r.endian
        if off < 28:
            return None
        btype = struct.unpack_from(e + "I", buf, off - 28)[0]
        if btype == 6:
            ifid = struct.unpack_from(e + "I", buf, off - 20)[0]
        elif btype == 2:
            ifid = struct.unpack_from(e + "H", buf, off - 20)[0]
        else:
            return None          # simple packet block: no timestamp of its own
        if ifid >= len(r.interfaces):
            return None
        _lt, tsres, _snap, tsoff = r.interfaces[ifid]
        th, tl = struct.unpack_from(e + "II", buf, off - 16)
        ticks = (th << 32) | tl
        per = 1e9 * tsres
        ns = ticks * int(round(per)) if per >= 1 and abs(per - round(per)) < 1e-9 else int(round(ticks * per))
        return ns + int(round(tsoff * 1e9))


class _Matcher:
    """Maps replayed rows to selected connections (``FlowTable.row_hook``)."""

    def __init__(self, table, sel: Selection):
        from ..flows import kernel as K
        self.K = K
        self.table = table
        self.targets = {}        # (ts, orig_h, orig_p, resp_h, resp_p, ip_proto, vlan, inner_vlan) -> uid
        for uid in sel.uids:
            self.targets[self.key_of(sel.flows[uid])] = uid
        self.ts = np.array(sorted({k[0] for k in self.targets}), dtype=np.float64)
        self.dns_ids = sel.dns_ids
        # Packets each connection had in the scan: once that many are carved it is complete
        # (flows that closed are emitted only when their timers run out, possibly much later).
        self.expect = {u: int(sel.flows[u].get("orig_pkts") or 0) + int(sel.flows[u].get("resp_pkts") or 0)
                       for u in sel.uids}
        self.seen: dict = {}
        self.done: set = set()
        self.db = None
        self.hits: list = []     # (frame, uid) of the current batch

    @staticmethod
    def key_of(rec: dict) -> tuple:
        return (float(rec.get("ts") or 0.0), rec.get("id.orig_h"), rec.get("id.orig_p"), rec.get("id.resp_h"),
                rec.get("id.resp_p"), rec.get("ip_proto"), rec.get("vlan"), rec.get("inner_vlan"))

    def flow_key(self, f: int) -> tuple:
        K = self.K
        t = self.table
        fi = t.FI[f]
        oh, op, rh, rp = t.endpoints(f)
        vlan, ivlan = int(fi[K.VLAN]), int(fi[K.IVLAN])
        return (float(t.FF[f, K.TS]), oh, op, rh, rp, int(fi[K.PROTO]), vlan if vlan >= 0 else None,
                ivlan if ivlan >= 0 else None)

    def __call__(self, lo: int, hi: int, row_fid) -> None:
        seg = row_fid[lo:hi]
        if not len(seg) or not len(self.ts):
            return
        cand = np.nonzero(np.isin(self.table.FF[seg, self.K.TS], self.ts))[0]
        if not len(cand):
            return
        cache = {}
        frames = self.db.cols["frame"]
        for j in cand.tolist():
            f = int(seg[j])
            uid = cache.get(f, False)
            if uid is False:
                uid = cache[f] = self.targets.get(self.flow_key(f))
            if uid is None:
                continue
            r = lo + j
            ids = self.dns_ids.get(uid)
            if ids is not None:
                pay = self.db.payload(r)
                if len(pay) < 2 or int.from_bytes(pay[:2], "big") not in ids:
                    continue
            self.hits.append((int(frames[r]), uid))
            n = self.seen[uid] = self.seen.get(uid, 0) + 1
            if ids is None and n >= self.expect[uid] > 0:
                self.done.add(uid)

    def file_done(self) -> None:
        """After a whole file: a DNS exchange whose transactions were all seen is complete."""
        for uid, ids in self.dns_ids.items():
            if ids is not None and self.seen.get(uid, 0) >= len(ids):
                self.done.add(uid)

    def ended(self, records) -> None:
        for rec in records:
            uid = self.targets.get(self.key_of(rec))
            if uid is not None:
                self.done.add(uid)


class _Fragments:
    """The frames of IP datagrams the decoder reassembled, so a connection's carved packets
    include every fragment and not only the one that completed the datagram.

    The decoder is not changed: this instance wraps its per-frame entry (to know the frame
    being decoded) and its fragment reassembler's ``add`` (to know which frames went into
    which datagram and which frame completed it).  Frames of datagrams still pending are kept
    (bounded like the reassembler); ``completed`` maps the completing frame of each datagram
    reassembled in the current batch to the datagram's earlier frames.
    """

    def __init__(self, decoder):
        from ..decode.slow import FragmentHeld
        self.snapshot = None          # callable(frame index in the batch) -> CarvedPacket
        self.frame = -1
        self.parts: dict = {}          # datagram key -> [CarvedPacket] (arrival order)
        self.completed: dict = {}      # (file, packet) of the completing frame -> [CarvedPacket]
        slow = decoder.slow
        frags = slow.frags
        decode, add = slow.decode, frags.add

        def decode_frame(buf, off, cap, wire, linktype, ts, frame):
            self.frame = frame
            return decode(buf, off, cap, wire, linktype, ts, frame)

        def add_fragment(key, *args, **kw):
            snap = self.snapshot(self.frame) if self.snapshot is not None else None
            have = self.parts.setdefault(key, [])
            if snap is not None and all(p.order != snap.order for p in have):
                have.append(snap)
            try:
                result = add(key, *args, **kw)
            except FragmentHeld:
                if len(self.parts) > 2 * frags.max_datagrams:     # drop what the reassembler dropped
                    self.parts = {k: v for k, v in self.parts.items() if k in frags.pending}
                raise
            except Exception:
                self.parts.pop(key, None)
                raise
            parts = self.parts.pop(key, [])
            if snap is not None:
                self.completed[snap.order] = [p for p in parts if p.order != snap.order]
            return result

        slow.decode = decode_frame
        frags.add = add_fragment


def collect(scan: ScanDir, sel: Selection, capture_root: str | None = None) -> CarveResult:
    """Replay the scan's captures and gather the selected connections' packets."""
    from ..decode import Decoder
    from ..flows.table import FlowTable
    from ..ingest import CaptureReader, NotACapture
    files = scan.capture_files()
    order = {f["path"]: i for i, f in enumerate(files)}
    starts = {}
    for uid in sel.uids:
        cap = sel.flows[uid].get("capture")
        if cap is None:
            raise EvidenceError(f"uid {uid} has no capture in {scan.file('flows.jsonl')} "
                                "(a scan made before captures were recorded, or a live capture)")
        if cap not in order:
            raise EvidenceError(f"capture {cap} of uid {uid} is not among the files of {scan.file('stats.json')}")
        starts[uid] = order[cap]
    first_file = min(starts.values())
    resolved = {}
    # Resolve every file that may be read before reading any: a missing capture is one clear error.
    need = sorted({s for s in starts.values()})
    for i in need:
        resolved[files[i]["path"]] = resolve_capture(files[i]["path"], scan.path, capture_root)
    table = FlowTable(site=None, max_flows=int(scan.stats.get("max_flows") or 1_000_000), observer=None)
    decoder = Decoder()
    frags = _Fragments(decoder)
    m = _Matcher(table, sel)
    table.row_hook = m
    packets: dict = {}
    read: list = []
    for i in range(first_file, len(files)):
        open_uids = [u for u, s in starts.items() if s <= i and u not in m.done]
        later = [u for u, s in starts.items() if s > i]
        if not open_uids and not later:
            break
        if not open_uids:
            continue      # nothing of the selection in this file: skip it (flows match by key + start)
        name = files[i]["path"]
        path = resolved.get(name) or resolve_capture(name, scan.path, capture_root)
        resolved[name] = path
        try:
            reader = CaptureReader(path)
        except NotACapture as e:
            raise EvidenceError(f"{e} (changed since the scan?)")
        except OSError as e:
            raise EvidenceError(f"capture {path}: cannot read: {e.strerror or e}")
        clock = _Clock(reader)
        read.append(name)
        base = 0
        try:
            for batch in reader:
                def snapshot(frame, batch=batch, base=base, i=i, name=name, clock=clock):
                    off = int(batch.offset[frame])
                    cap = int(batch.caplen[frame])
                    return CarvedPacket(order=(i, base + frame), capture=name, linktype=int(batch.linktype[frame]),
                                        ts_ns=clock.ns(batch.buf, off, float(batch.ts[frame])),
                                        wirelen=int(batch.wirelen[frame]), data=bytes(batch.buf[off:off + cap]))
                frags.snapshot = snapshot
                frags.completed = {}
                db = decoder.decode(batch)
                m.db = db
                m.hits = []
                m.ended(table.process(db))
                for frame, uid in m.hits:
                    k = (i, base + frame)
                    p = packets.get(k)
                    if p is None:
                        p = packets[k] = snapshot(frame)
                    for q in [p] + [packets.setdefault(f.order, f) for f in frags.completed.get(k, ())]:
                        if uid not in q.uids:
                            q.uids.append(uid)
                base += len(batch)
        except OSError as e:
            raise EvidenceError(f"capture {path}: read error: {e.strerror or e}")
        m.file_done()
        want = files[i].get("packets_read")
        got = reader.stats.packets_read
        if isinstance(want, int) and want != got:
            raise EvidenceError(f"capture {path} has {got} packets, the scan read {want}: it changed since the scan")
    m.ended(table.flush())
    out = [packets[k] for k in sorted(packets)]
    counts = {u: 0 for u in sel.uids}
    first = {}
    for idx, p in enumerate(out):
        for u in p.uids:
            counts[u] += 1
            first.setdefault(u, idx)
    return CarveResult(packets=out, counts=counts, first=first, captures=read, resolved=resolved)


def comment(uid: str, sel: Selection) -> str:
    """The pcapng comment on a connection's first packet (uids and endpoints only: no payload)."""
    rec = sel.flows.get(uid) or {}
    parts = [f"inspector uid {uid}"]
    if sel.labels.get(uid):
        parts.append(sel.labels[uid])
    rel = sel.related.get(uid)
    if rel:
        parts.append(f"{rel[0]} {rel[1]}")
    parts.append(f"{rec.get('proto')} {rec.get('id.orig_h')}:{rec.get('id.orig_p')} -> "
                 f"{rec.get('id.resp_h')}:{rec.get('id.resp_p')}")
    if rec.get("community_id"):
        parts.append(f"community_id {rec['community_id']}")
    return "; ".join(parts)


def _epb_bytes(cls, iface: int, ts_ns: int, data: bytes, wirelen: int, opts) -> bytes:
    """One dpkt EnhancedPacketBlock, serialised by dpkt, with the original packet length kept
    (dpkt 1.9 writes the captured length in both length fields)."""
    epb = cls(iface_id=iface, ts_high=(ts_ns >> 32) & 0xFFFFFFFF, ts_low=ts_ns & 0xFFFFFFFF, pkt_data=data,
              opts=opts)
    raw = bytearray(bytes(epb))
    if wirelen > len(data):
        struct.pack_into(cls.__byte_order__ + "I", raw, 24, wirelen)
    return bytes(raw)


def write_pcapng(out, res: CarveResult, sel: Selection) -> int:
    """Write the carved packets to ``out`` (a path or a binary file) with dpkt's pcapng writer.

    Deterministic: no wall-clock time anywhere, so the same selection gives the same bytes.
    Returns the number of packets written.
    """
    from dpkt import pcapng as P
    from .. import __version__
    le = sys.byteorder == "little"
    SHB, IDB, EPB, OPT = ((P.SectionHeaderBlockLE, P.InterfaceDescriptionBlockLE, P.EnhancedPacketBlockLE,
                           P.PcapngOptionLE) if le else
                          (P.SectionHeaderBlock, P.InterfaceDescriptionBlock, P.EnhancedPacketBlock, P.PcapngOption))
    ifaces: dict = {}
    for p in res.packets:
        ifaces.setdefault((p.capture, p.linktype), len(ifaces))
    if not ifaces:
        ifaces[("", 1)] = 0     # an empty slice is still a valid file
    end = OPT(code=P.PCAPNG_OPT_ENDOFOPT)
    shb = SHB(opts=[OPT(code=P.PCAPNG_OPT_SHB_USERAPPL, data=f"inspector {__version__}".encode()), end])
    idbs = []
    for (cap, lt), _i in sorted(ifaces.items(), key=lambda kv: kv[1]):
        opts = [OPT(code=P.PCAPNG_OPT_IF_TSRESOL, data=b"\x09")]
        if cap:
            opts.insert(0, OPT(code=P.PCAPNG_OPT_IF_NAME, data=cap.encode("utf-8", "replace")))
            opts.insert(1, OPT(code=P.PCAPNG_OPT_IF_DESCRIPTION,
                               data=f"packets of {cap} ({LINKTYPE_NAMES.get(lt, lt)})".encode("utf-8", "replace")))
        opts.append(end)
        idbs.append(IDB(linktype=lt, snaplen=0, opts=opts))
    notes = {}
    for uid, idx in res.first.items():
        notes.setdefault(idx, []).append(comment(uid, sel))
    own = isinstance(out, (str, os.PathLike))
    tmp = f"{out}.tmp" if own else None
    fh = open(tmp, "wb") if own else out
    try:
        P.Writer(fh, shb=shb, idb=idbs)      # writes the section and interface blocks
        for idx, p in enumerate(res.packets):
            opts = None
            if idx in notes:
                opts = [OPT(code=P.PCAPNG_OPT_COMMENT, text=" | ".join(notes[idx])), end]
            fh.write(_epb_bytes(EPB, ifaces[(p.capture, p.linktype)], p.ts_ns, p.data, p.wirelen, opts))
        if own:
            fh.close()
            os.replace(tmp, out)
    except BaseException:
        if own:
            fh.close()
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    return len(res.packets)


def carve(scan_dir: str, out, uids=(), alert_ids=(), incident_ids=(), with_dns: bool = False,
          capture_root: str | None = None) -> tuple:
    """Select, replay and write: returns (Selection, CarveResult)."""
    scan = ScanDir(scan_dir)
    from .scandir import select
    sel = select(scan, uids=uids, alert_ids=alert_ids, incident_ids=incident_ids, with_dns=with_dns)
    res = collect(scan, sel, capture_root)
    try:
        write_pcapng(out, res, sel)
    except OSError as e:
        raise EvidenceError(f"{out}: cannot write: {e.strerror or e}")
    return sel, res


def pcapng_bytes(res: CarveResult, sel: Selection) -> bytes:
    """The carved slice as bytes (for evidence packs and explain)."""
    buf = io.BytesIO()
    write_pcapng(buf, res, sel)
    return buf.getvalue()
