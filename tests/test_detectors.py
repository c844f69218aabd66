"""Boundary cases of each scored detector, through the policy engine with the default policy: the
sub-scores at their ideal amounts, min_score just met and just missed, the qualifying conditions on
either side of their limits.  (Beaconing against RITA's own cases: tests/test_scoring.py.)"""
from __future__ import annotations

import pytest

from test_policy import FOREIGN, T0, UNKNOWN, _b32_queries, dns, flow, flows_only, rules, run, sids  # noqa: F401

HOUR = 3600.0


def detector(rules, name):
    from inspector.policy import PolicyEngine
    from test_policy import SITE
    eng = PolicyEngine(rules, SITE)
    return next(d for d in eng.detectors if d.NAME == name)


# -- slow drip ------------------------------------------------------------------------------------

def _drip(n, span, ob=4000, rb=300, **kw):
    step = span / (n - 1) if n > 1 else 0
    return [flow(**FOREIGN, ts=T0 + i * step, ob=ob, rb=rb, payload_type="tls-encrypted", **kw) for i in range(n)]


def test_slow_drip_score_at_the_ideal_amounts(rules):
    d = detector(rules, "slow_drip")
    assert d.score(12, 48 << 10, HOUR)["score"] == 1.0
    assert d.score(24, 96 << 10, 2 * HOUR)["score"] == 1.0          # capped at 1
    assert d.score(6, 24 << 10, HOUR / 2)["score"] == 0.5             # half of everything
    # the drip: ~46 small JSON POSTs over 55 minutes (the old 'min_span: 1h' missed it)
    assert d.score(46, 46 * 1800, 55 * 60)["score"] >= 0.9


def test_slow_drip_min_score_met_and_missed(rules):
    # 12 uploads of 4,000 bytes over 35 minutes: 0.25 + 0.35 x 48,000/49,152 + 0.4 x 35/60 = 0.825 -> fires (so does the beacon
    # detector: they are perfectly regular)
    a = [x for x in run(rules, flows_only(*_drip(12, 35 * 60))) if x["alert"]["signature_id"] == 1000040]
    assert len(a) == 1 and a[0]["score"] == pytest.approx(0.825)
    # over 15 minutes: 0.25 + 0.35 + 0.4 x 0.25 = 0.70 < 0.75 -> quiet
    assert 1000040 not in sids(run(rules, flows_only(*_drip(12, 15 * 60))))


def test_slow_drip_min_uploads(rules):
    assert run(rules, flows_only(*_drip(4, 2 * HOUR, ob=60_000))) == []                 # 4 < min_uploads
    assert sids(run(rules, flows_only(*_drip(5, 2 * HOUR, ob=60_000)))) == [1000040]   # 0.104 + 0.35 + 0.4


@pytest.mark.parametrize("ob, rb, counted", [
    (4500, 3000, True),          # ratio 1.5 exactly
    (4499, 3000, True),          # ratio below 1.5 but 1,499 bytes more out than in (>= 1 KB)
    (3000, 2100, False),         # ratio 1.43 and 900 bytes more
    (3000, 1976, True),          # 1,024 bytes more: min_net_out exactly
    (900, 900, False),           # a beacon: as much in as out
    (300 << 10, 100, False),     # larger than max_upload (256 KB): not even part of the window
])
def test_slow_drip_what_counts_as_a_small_upload(rules, ob, rb, counted):
    d = detector(rules, "slow_drip")
    from inspector.policy.view import FlowView
    d.observe_flow(FlowView(flow(**FOREIGN, ob=ob, rb=rb)), None)
    windows = list(d.store.close_all())
    assert (windows[0].state.uploads if windows else 0) == int(counted)


# -- long sessions ----------------------------------------------------------------------------------

def _piece(ts, duration, *, sport=50000, history="ShADadFf", state="SF", **kw):
    f = flow(**UNKNOWN, ts=ts, duration=duration, sport=sport, dport=22, service="ssh", **kw)
    f["history"], f["conn_state"] = history, state
    return f


def test_long_session_score_boundary(rules):
    assert sids(run(rules, flows_only(_piece(T0, HOUR)))) == [1000080]            # 1 h: score 0.5
    assert run(rules, flows_only(_piece(T0, HOUR - 60))) == []                     # 59 min: 0.49


def test_long_session_joins_records_split_by_inactivity(rules):
    """Keepalives 8 minutes apart: the flow table ends the connection after 5 quiet minutes and the next
    keepalive opens a record without a SYN (history without S, state OTH): one session of 72 minutes."""
    pieces = [_piece(T0, 2, history="ShAD", state="S1")]
    pieces += [_piece(T0 + 480 * k, 1, history="Dd", state="OTH") for k in range(1, 10)]
    a = run(rules, flows_only(*pieces))
    assert sids(a) == [1000080]
    ev = a[0]["evidence"]["long_session"]
    assert ev["connections"] == 10 and ev["duration"] == pytest.approx(9 * 480 + 1)
    assert a[0]["flows"] == 10 and "10 connection records" in a[0]["why"]


def test_long_session_joins_reconnects_after_an_unclean_close(rules):
    # autossh: the connection is reset, a new one (with a SYN) follows within reconnect_gap (2 min)
    pieces = [_piece(T0 + k * 1260, 1200, sport=50000 + k, state="RSTO") for k in range(4)]
    assert sids(run(rules, flows_only(*pieces))) == [1000080]
    # after 3 minutes: separate sessions of 20 minutes each
    pieces = [_piece(T0 + k * 1380, 1200, sport=50000 + k, state="RSTO") for k in range(4)]
    assert run(rules, flows_only(*pieces)) == []


def test_long_session_clean_repeats_are_not_one_session(rules):
    """A beacon: short connections that each close with a FIN, 60 s apart for 2 hours."""
    pieces = [_piece(T0 + 60 * k, 1, sport=40000 + k) for k in range(120)]
    assert 1000080 not in sids(run(rules, flows_only(*pieces)))


def test_long_session_max_gap(rules):
    # the same connection's records, but 31 minutes of silence between them (> max_gap 30 min)
    pieces = [_piece(T0, 40 * 60, history="ShAD", state="S1"), _piece(T0 + 71 * 60, 40 * 60, history="Dd", state="OTH")]
    assert run(rules, flows_only(*pieces)) == []
    pieces[1] = _piece(T0 + 69 * 60, 40 * 60, history="Dd", state="OTH")           # 29 minutes
    assert sids(run(rules, flows_only(*pieces))) == [1000080]


# -- DNS tunnel -------------------------------------------------------------------------------------

def test_dns_tunnel_min_unique_subdomains(rules):
    evs = lambda n: [("dns", dns(q, dst="203.0.113.53", ts=T0 + i)) for i, q in enumerate(_b32_queries(n))]  # noqa: E731
    assert run(rules, evs(19)) == []                                                # below 20: not scored
    a = run(rules, evs(20))
    assert sids(a) == [1000050]
    # 20 of 60 ideal (0.1), all encoded (0.5), mean length 49 >= 40 (0.2)
    assert a[0]["score"] == pytest.approx(0.8) and a[0]["evidence"]["dns"]["parts"]["subdomains"] == 0.333


def test_dns_tunnel_short_labels_score_low(rules):
    """60 distinct short names (a CDN's hosts): no encoded label, so 0.3 + 0.2 x 8/40 = 0.34."""
    evs = [("dns", dns(f"h{i:03d}x.cdn.example.net", dst="203.0.113.53", ts=T0 + i)) for i in range(60)]
    assert run(rules, evs) == []


# -- ICMP tunnel ------------------------------------------------------------------------------------

def _icmp(per_packet, n=20, rb=None, **kw):
    return flow(dst="203.0.113.99", proto="icmp", service=None, sport=8, dport=0, ob=n * per_packet,
                rb=rb if rb is not None else n * per_packet, op=n, rp=n, **kw)


def test_icmp_tunnel_payload_size_boundary(rules):
    # size sub-score 1 at 200 bytes a packet: 0.9 -> fires; 150 bytes: 0.9 x 86/136 = 0.57 -> quiet
    assert sids(run(rules, flows_only(_icmp(200)))) == [1000060]
    assert run(rules, flows_only(_icmp(150))) == []
    assert run(rules, flows_only(_icmp(56))) == []                 # an ordinary ping


def test_icmp_tunnel_signs_add_up(rules):
    # 150-byte payloads (0.57) whose replies do not mirror them (0.8): 1 - 0.43 x 0.2 = 0.91
    a = run(rules, flows_only(_icmp(150, rb=20 * 64)))
    assert sids(a) == [1000060] and a[0]["score"] == pytest.approx(0.914, abs=0.002)
    assert "do not mirror" in a[0]["why"]


def test_icmp_tunnel_min_packets(rules):
    assert run(rules, flows_only(_icmp(400, n=9))) == []           # fewer than 10 packets: only volume counts


def test_slow_drip_covers_the_channels_smaller_connections(rules):
    """TLS uploads with full handshakes: the small ones receive more than they send (the certificates).
    They are not scored, but once the group is a drip its alert covers them: one channel, one story."""
    fs = _drip(14, HOUR, ob=6000, rb=3500)
    fs += [flow(**FOREIGN, ts=T0 + 200 + 600 * i, ob=2100, rb=3600, payload_type="tls-encrypted") for i in range(5)]
    early = flow(**FOREIGN, ts=T0 - 60, ob=2100, rb=3600, payload_type="tls-encrypted")   # before any upload
    (a,) = [x for x in run(rules, flows_only(early, *fs)) if x["alert"]["signature_id"] == 1000040]
    assert a["evidence"]["slow_drip"]["uploads"] == 14 and a["flows"] == 20
    assert early["uid"] in a["uids"] and "beside 6 smaller connections" in a["why"]
    # small flows alone (no upload among them) raise no slow drip
    alone = [flow(**FOREIGN, ts=T0 + 300 * i + 7 * (i % 5), ob=2100 + 40 * i, rb=3600) for i in range(30)]
    assert 1000040 not in sids(run(rules, flows_only(*alone)))
