"""A connection that crosses the boundary between two consecutive captures of one host is one flow
in ``inspector batch`` (as in ``scan a b`` and ``zeek -r`` over rotated files), stored once, with
the capture holding its first packet; captures that overlap in time, are far apart, or whose
packet times run backwards are never chained; a chain is committed all or nothing."""
from __future__ import annotations

import io

import duckdb
import pytest

from helpers.pkt import ACK, FIN, PSH, SYN, eth, ipv4, pcap_bytes, tcp, udp
from inspector.batch import run_batch
from inspector.batch.chains import MAX_GAP, build_chains, capture_span
from inspector.batch.discover import file_sha256
from inspector.batch.store import Store
from inspector.batch.worker import WorkerSettings, result_from_records
from inspector.pipeline import run_scan

T0 = 1_767_000_000 * 10**9          # ns
S = 10**9
C, SRV = "10.1.0.5", "198.51.100.80"


def pkt(src, sp, dst, dp, flags, seq, ack, data=b""):
    return eth(0x0800, ipv4(src, dst, 6, tcp(sp, dp, data, seq=seq, ack=ack, flags=flags)))


def long_connection():
    """One TCP connection over 40 s: handshake and a request before the rotation, the answer and
    the close after it; plus a UDP exchange crossing the same boundary."""
    first = [(T0, pkt(C, 40000, SRV, 8443, SYN, 100, 0)),
             (T0 + 1 * S, pkt(SRV, 8443, C, 40000, SYN | ACK, 900, 101)),
             (T0 + 2 * S, pkt(C, 40000, SRV, 8443, ACK, 101, 901)),
             (T0 + 3 * S, pkt(C, 40000, SRV, 8443, PSH | ACK, 101, 901, b"GET / HTTP/1.1\r\n\r\n")),
             (T0 + 4 * S, eth(0x0800, ipv4(C, "10.1.0.1", 17, udp(5000, 5001, b"ping"))))]
    second = [(T0 + 20 * S, pkt(SRV, 8443, C, 40000, PSH | ACK, 901, 119, b"HTTP/1.1 200 OK\r\n\r\n")),
              (T0 + 21 * S, eth(0x0800, ipv4("10.1.0.1", C, 17, udp(5001, 5000, b"pong")))),
              (T0 + 30 * S, pkt(C, 40000, SRV, 8443, FIN | ACK, 119, 920)),
              (T0 + 31 * S, pkt(SRV, 8443, C, 40000, FIN | ACK, 920, 120)),
              (T0 + 32 * S, pkt(C, 40000, SRV, 8443, ACK, 120, 921))]
    return first, second


def flows_of(db, host):
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute("SELECT * FROM flows WHERE host = ? ORDER BY ts", [host])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def test_connection_across_two_captures_is_one_flow(tmp_path):
    first, second = long_connection()
    caps = tmp_path / "caps"
    (caps / "hostA").mkdir(parents=True)
    a, b = caps / "hostA" / "rot-0001.pcap", caps / "hostA" / "rot-0002.pcap"
    a.write_bytes(pcap_bytes(first))
    b.write_bytes(pcap_bytes(second))
    db = tmp_path / "db" / "b.duckdb"
    db.parent.mkdir()
    out = io.StringIO()
    assert run_batch([str(caps)], str(db), workers=0, out=out, err=out) == 0, out.getvalue()
    flows = flows_of(db, "hostA")
    ref = run_scan([str(a), str(b)]).flows          # the two files as one stream
    key = ("id_orig_h", "id_orig_p", "id_resp_h", "id_resp_p", "proto", "conn_state", "orig_pkts", "resp_pkts",
           "orig_bytes", "resp_bytes", "history")
    got = sorted(tuple(f[k] for k in key) for f in flows)
    want = sorted(tuple(f[k.replace("id_", "id.")] for k in key) for f in ref)
    assert got == want
    tcpf = [f for f in flows if f["proto"] == "tcp"]
    assert len(tcpf) == 1 and tcpf[0]["conn_state"] == "SF" and (tcpf[0]["orig_pkts"], tcpf[0]["resp_pkts"]) == (5, 3)
    assert tcpf[0]["capture_sha256"] == file_sha256(str(a))        # stored with its first packet's capture
    udpf = [f for f in flows if f["proto"] == "udp"]
    assert len(udpf) == 1 and (udpf[0]["orig_pkts"], udpf[0]["resp_pkts"]) == (1, 1)
    # both captures are recorded as processed; packets are counted once, each in its own file
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = dict(con.execute("SELECT rel, packets FROM captures").fetchall())
    finally:
        con.close()
    assert rows == {"hostA/rot-0001.pcap": 5, "hostA/rot-0002.pcap": 5}
    # a second run finds nothing to do and changes nothing
    assert run_batch([str(caps)], str(db), workers=0, out=out, err=out) == 0
    assert flows_of(db, "hostA") == flows


def _task(path, host="h"):
    return {"sha256": file_sha256(str(path)), "path": str(path), "host": host, "rel": path.name,
            "size": path.stat().st_size}


def test_chain_rules(tmp_path):
    first, second = long_connection()
    files = {}
    for name, frames in (("a", first), ("b", second),
                         ("overlap", [(t + S // 2, f) for t, f in first]),                     # same time as a
                         ("late", [(t + int((MAX_GAP + 60) * S), f) for t, f in second]),     # after a long pause
                         ("backwards", [first[1], first[0]])):                                # times run backwards
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(pcap_bytes(frames))
        files[name] = p
    (tmp_path / "empty.pcap").write_bytes(pcap_bytes([]))
    files["empty"] = tmp_path / "empty.pcap"
    tasks = {n: _task(p) for n, p in files.items()}
    spans = {t["sha256"]: capture_span(t["path"]) for t in tasks.values()}
    assert spans[tasks["backwards"]["sha256"]] is None
    assert spans[tasks["empty"]["sha256"]] is None

    def chains_of(*names):
        chains = build_chains([tasks[n] for n in names], spans)
        assert sum(len(c) for c in chains) == len(names)
        return sorted([t["rel"] for t in c] for c in chains)
    assert chains_of("b", "late", "a", "backwards", "empty") == [
        ["a.pcap", "b.pcap"], ["backwards.pcap"], ["empty.pcap"], ["late.pcap"]]
    # a capture overlapping another in time (a second interface, a copy) chains with nothing
    assert chains_of("a", "overlap", "b") == [["a.pcap"], ["b.pcap"], ["overlap.pcap"]]
    # another host's capture never joins
    other = dict(tasks["b"], host="other", sha256="x" * 64)
    spans[other["sha256"]] = spans[tasks["b"]["sha256"]]
    assert [other] in build_chains([tasks["a"], other], spans)


def test_chain_commit_is_all_or_nothing(tmp_path):
    rec = {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2",
           "id.resp_p": 2, "proto": "tcp"}
    r1 = result_from_records([rec], "1" * 64, "h")
    r2 = result_from_records([rec], "1" * 64, "h")          # the same capture twice: the second insert fails
    store = Store(str(tmp_path / "s.duckdb"))
    try:
        with pytest.raises(Exception):
            store.commit_many([r1, r2])
        assert store.query("SELECT count(*) FROM captures")[0][0] == 0
        assert store.query("SELECT count(*) FROM flows")[0][0] == 0
        store.commit_many([r1])
        assert store.query("SELECT count(*) FROM flows")[0][0] == 1
    finally:
        store.close()


def test_chain_with_a_changed_file_is_retried(tmp_path, monkeypatch):
    from inspector.batch import worker
    first, second = long_connection()
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(pcap_bytes(first))
    b.write_bytes(pcap_bytes(second))
    ta, tb = _task(a), _task(b)
    b.write_bytes(pcap_bytes(second[:2]))                   # rewritten after it was hashed
    res = worker.process_chain([ta, tb], WorkerSettings())
    assert [r.status for r in res] == ["failed", "failed"] and "changed since it was hashed" in res[0].error
