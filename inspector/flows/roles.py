"""Application hints for Zeek's analyzer-driven role flips (orig/resp swapped after the first packet).

Zeek decides a connection's originator from its first packet, flipped at creation when the source
port is a likely server port and the destination port is not (``IPBasedAnalyzer::NewConn``; never
when the destination is the IPv4 broadcast address).  Two analyzers that Zeek attaches by the
responder's port then flip a UDP connection once more when the first message they parse shows the
roles the other way round:

* DNS (``DNS_Interpreter::ParseMessage``, ports 53, 137, 5353, 5355): the first DNS message of the
  connection (at least a 12-byte header) is a response (QR set) sent by the originator, and the
  responder address is not multicast.
* NTP (``proc_ntp_message`` in ntp-analyzer.pac, port 123): a message in SERVER mode (4) from the
  originator or in CLIENT mode (3) from the responder, at most once per connection.

The flow kernel and the reference table cannot read payloads, so this module turns each decoded
row into a small bit set (``hints``) that both consult; the flip itself follows the rules above in
``kernel.process`` and ``reference.PyFlowTable`` alike.
"""
from __future__ import annotations

import numpy as np

#: a DNS message header (12 bytes) is present
H_DNS_MSG = 1
#: ... and its QR bit says response
H_DNS_RESPONSE = 2
#: an NTP standard message (48 bytes) in SERVER mode
H_NTP_SERVER = 4
#: an NTP standard message in CLIENT mode
H_NTP_CLIENT = 8

#: UDP ports Zeek's DNS analyzer is registered for (base/protocols/dns/main.zeek)
DNS_UDP_PORTS = (53, 137, 5353, 5355)
#: UDP port of Zeek's NTP analyzer (base/protocols/ntp/main.zeek)
NTP_UDP_PORT = 123

# per-flow analyzer flags (kernel FI[APPF], reference Flow.roles)
A_DNS = 1            # DNS analyzer attached (responder port at creation)
A_NTP = 2            # NTP analyzer attached
A_DNS_SEEN = 4       # the DNS analyzer parsed its first message
A_NTP_FLIPPED = 8    # the NTP analyzer flipped the connection already

_DNS_MIN = 12
_NTP_MIN = 48
_CANDIDATE = np.zeros(65536, dtype=np.bool_)
_CANDIDATE[list(DNS_UDP_PORTS) + [NTP_UDP_PORT]] = True


def analyzers_for(proto: int, resp_port: int) -> int:
    """The A_* analyzer flags Zeek attaches to a new connection by its responder port."""
    if proto != 17:
        return 0
    if resp_port in DNS_UDP_PORTS:
        return A_DNS
    if resp_port == NTP_UDP_PORT:
        return A_NTP
    return 0


def hints(db) -> np.ndarray:
    """One H_* bit set per row of a decoded batch (0 for rows no analyzer would parse): only UDP
    rows with a DNS or NTP port on either side are read, so the cost is proportional to them."""
    c = db.cols
    n = len(db)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    cand = (c["proto"] == 17) & (_CANDIDATE[c["sport"].astype(np.int64)] | _CANDIDATE[c["dport"].astype(np.int64)])
    rows = np.nonzero(cand & (c["pay_cap"] >= _DNS_MIN))[0]
    for i in rows.tolist():
        p = db.payload(i)
        if len(p) < _DNS_MIN:
            continue
        h = H_DNS_MSG | (H_DNS_RESPONSE if p[2] & 0x80 else 0)
        if len(p) >= _NTP_MIN:
            mode = p[0] & 7
            if mode == 4:
                h |= H_NTP_SERVER
            elif mode == 3:
                h |= H_NTP_CLIENT
        out[i] = h
    return out


def wants_flip(flags: int, hint: int, is_orig: bool, resp_multicast: bool) -> tuple[bool, int]:
    """Zeek's DNS/NTP flip rules for one packet: (flip now?, the connection's new flags).  The
    reference table calls this; the kernel has the same rules inline."""
    flip = False
    if flags & A_DNS and not flags & A_DNS_SEEN and hint & H_DNS_MSG:
        flags |= A_DNS_SEEN
        if hint & H_DNS_RESPONSE and is_orig and not resp_multicast:
            flip = True
    if flags & A_NTP and not flags & A_NTP_FLIPPED and (
            (hint & H_NTP_SERVER and is_orig) or (hint & H_NTP_CLIENT and not is_orig)):
        flags |= A_NTP_FLIPPED
        flip = True
    return flip, flags
