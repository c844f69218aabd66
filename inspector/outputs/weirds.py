"""The weird catalogue: every name ``weird.jsonl`` (and ``stats.json``'s ``weirds``) can carry.

A weird name is ``<layer>.<snake_case>``; the catalogue gives each its layer and
meaning.  Entries come from two places:

* ``CORE`` below: the stages below the protocols (capture, ingest, decode, flows,
  TCP reassembly, content) and the dispatcher's own names;
* each protocol module's ``WEIRDS`` dict (``name -> meaning``), collected through
  the protocol registry, so a protocol's names live with the code that emits them.

A name may hold one placeholder: ``<n>`` (digits) or ``<word>`` (lower case, digits,
underscores), for names built at run time, e.g. ``ssl.client_hello_bad_extension_<n>``
or ``<analyzer>.analyzer_error``.  tests/test_weird_catalogue.py fails on any
emitted name, and any name literal in the source, that the catalogue does not
declare.  Light to import (no stage, no pyarrow).
"""
from __future__ import annotations

import re
from typing import NamedTuple


class Weird(NamedTuple):
    name: str       # the name, or a pattern with one <placeholder>
    layer: str      # the part before the dot: ingest, ip, tcp, dns, ssl...
    stage: str      # what emits it: capture, ingest, decode, flows, reassembly, protocols, content
    meaning: str    # one line


def _entries(stage: str, table: dict) -> tuple:
    return tuple(Weird(name, name.split(".", 1)[0], stage, meaning) for name, meaning in table.items())


CORE = (
    _entries("capture", {
        "capture.bad_record": "live capture: a record from libpcap that could not be read (skipped)",
        "capture.failed": "live capture: the capture handle failed (error in detail); the run ends",
        "capture.interface_drop": "live capture: packets dropped by the interface or driver",
        "capture.kernel_drop": "live capture: packets dropped by the kernel (capture buffer full)",
        "capture.rx_dropped": "live capture: packets counted in the interface's rx_dropped counter",
    })
    + _entries("ingest", {
        "ingest.bad_block": "pcapng: a block shorter than its header (skipped)",
        "ingest.bad_packet_block": "pcapng: a packet block for an unknown interface or before any (skipped)",
        "ingest.bogus_record_length": "pcap: a record length larger than the snap length or 256 KiB",
        "ingest.corrupt_block": "pcapng: a block that cannot be parsed (reader resynchronises)",
        "ingest.decompression_error": "the gzip or zstd stream of a compressed capture is corrupt",
        "ingest.read_error": "an I/O error while reading the capture (rest of the file lost)",
        "ingest.resync_failed": "no plausible record found after a corrupt one: rest of the file skipped",
        "ingest.resynchronised": "reading resumed at a plausible record after skipping bytes",
        "ingest.truncated_file_header": "the file ends inside the pcap file header",
        "ingest.truncated_record": "the file ends inside a record (packet cut short or dropped)",
    })
    + _entries("decode", {
        "decode.malformed": "a frame the decoder could not parse (exception in detail)",
        "eth.truncated_header": "Ethernet header cut short",
        "vlan.truncated_header": "802.1Q/802.1ad tag cut short",
        "mpls.truncated_header": "MPLS label stack cut short",
        "fabricpath.truncated_header": "Cisco FabricPath header cut short",
        "vntag.truncated_header": "VN-Tag header cut short",
        "fddi.truncated_header": "FDDI header and 802.2 LLC/SNAP cut short",
        "pbb.truncated_header": "802.1ah provider backbone bridge (PBB) I-TAG and inner frame cut short",
        "ppp.truncated_header": "PPP header cut short",
        "pppoe.truncated_header": "PPPoE header cut short",
        "sll.truncated_header": "Linux cooked (SLL) header cut short",
        "sll2.truncated_header": "Linux cooked v2 (SLL2) header cut short",
        "null.truncated_header": "BSD loopback (NULL/LOOP) header cut short",
        "chdlc.truncated_header": "Cisco HDLC header cut short",
        "radiotap.truncated_header": "radiotap header cut short",
        "radiotap.bad_length": "radiotap header length larger than the frame",
        "ppi.truncated_header": "PPI header cut short",
        "ppi.bad_length": "PPI header length larger than the frame",
        "wlan.truncated_header": "802.11 header (or its LLC/SNAP) cut short",
        "nflog.truncated_header": "NFLOG header cut short",
        "nflog.bad_tlv": "NFLOG TLV with an impossible length",
        "ip.truncated_header": "IPv4 header cut short",
        "ip.bad_version": "IP version other than 4 or 6 (or not the one the link layer said)",
        "ip.bad_header_length": "IPv4 header length (IHL) below 5",
        "ip.bad_total_length": "IPv4 total length smaller than the header",
        "ip.total_length_zero": "IPv4 total length 0 (TSO offload): the captured length is used",
        "ip.truncated_packet": "IP total length larger than the bytes on the wire",
        "ip.truncated_fragment": "a fragment not fully captured (cannot be reassembled)",
        "ip.reassembled_too_large": "reassembled IPv4 datagram over 65535 bytes",
        "ip.fragment_too_large": "a fragment ending past 65535 bytes (datagram discarded)",
        "ip.too_many_fragments": "more than 1024 fragments in one datagram (discarded)",
        "ip.fragment_inconsistent_overlap": "overlapping fragments with different bytes (first kept)",
        "ip.fragment_timeout": "a datagram's fragments did not all arrive within the timeout",
        "ip.fragment_incomplete": "a datagram still missing fragments at the end of the input",
        "ip.fragment_buffer_full": "fragment buffer full: the oldest datagram's fragments were discarded",
        "ip6.truncated_header": "IPv6 header cut short",
        "ip6.truncated_packet": "IPv6 payload length larger than the bytes on the wire",
        "ip6.truncated_extension": "an IPv6 extension header cut short",
        "ip6.bad_extension_length": "an IPv6 extension header longer than the packet",
        "ip6.reassembled_too_large": "reassembled IPv6 payload over 65535 bytes",
        "tcp.truncated_header": "TCP header cut short",
        "tcp.bad_header_length": "TCP data offset below 5 or past the segment",
        "udp.truncated_header": "UDP header cut short",
        "udp.length_mismatch": "UDP length differs from the IP payload length",
        "icmp.truncated_header": "ICMP header cut short",
        "icmp.version_mismatch": "ICMP over IPv6 or ICMPv6 over IPv4",
        "gre.truncated_header": "GRE header cut short",
        "gre.unknown_version": "GRE version other than 0 or 1",
        "erspan.truncated_header": "ERSPAN header cut short",
        "geneve.truncated_header": "Geneve header cut short",
        "capwap.bad_header_length": "CAPWAP header length (HLEN) below the 8-byte minimum",
    })
    + _entries("flows", {
        "flow.table_full": "the flow table reached --max-flows: least recently active flows ended early",
        "flow.history_truncated": "a connection's history letters reached the length limit",
        "tcp.connection_reuse": "a new SYN on a closed or different connection with the same 5-tuple",
        "tcp.initial_seq_jump": "first data far past the initial sequence number: the direction was re-based",
        "tcp.syn_seq_jump": "a SYN with a new initial sequence number",
        "tcp.too_many_gaps": "more sequence gaps in one direction than are tracked",
    })
    + _entries("reassembly", {
        "tcp.inconsistent_retransmission": "a retransmission with different bytes than the original (first kept)",
        "tcp.reassembly_memory_cap": "reassembly gave up waiting for missing data (memory bound)",
        "<analyzer>.analyzer_error": "a protocol analyzer raised on traffic and was detached (exception in detail)",
    })
    + _entries("content", {
        "content.decompression": "a message body that could not be fully decompressed (limit or corrupt data)",
        "content.type_mismatch": "a body whose bytes disagree with its declared Content-Type",
        "content.archive_bomb": "an archive past a member-count, size, ratio, nesting or time bound: expansion stopped",
        "content.encrypted_archive": "an archive with encrypted entries (their content cannot be inspected)",
        "files.error": "the files stage raised on a body (exception in detail); content inspection goes on",
    })
)


_PLACEHOLDER = re.compile(r"<([a-z_]+)>")


def _pattern(name: str) -> re.Pattern:
    """``a.b_<n>`` -> a regex; ``<n>`` is digits, any other placeholder a snake_case word."""
    parts = []
    pos = 0
    for m in _PLACEHOLDER.finditer(name):
        parts.append(re.escape(name[pos:m.start()]))
        parts.append(r"[0-9]+" if m.group(1) == "n" else r"[a-z0-9_]+")
        pos = m.end()
    parts.append(re.escape(name[pos:]))
    return re.compile("".join(parts) + r"\Z")


_CATALOGUE: tuple | None = None


def protocol_weirds() -> tuple:
    """The protocol modules' ``WEIRDS`` (registry order)."""
    from .. import protocols
    out = []
    for mod in protocols.load():
        table = getattr(mod, "WEIRDS", None) or {}
        out.extend(_entries("protocols", table))
    return tuple(out)


def catalogue() -> tuple:
    """Every declared weird (``Weird`` tuples), core stages first, then protocols."""
    global _CATALOGUE
    if _CATALOGUE is None:
        entries = CORE + protocol_weirds()
        seen: dict = {}
        for w in entries:
            if w.name in seen:
                raise ValueError(f"weird {w.name!r} declared twice")
            seen[w.name] = w
        _CATALOGUE = entries
    return _CATALOGUE


def lookup(name: str) -> Weird | None:
    """The catalogue entry ``name`` falls under (exact name or pattern), or None."""
    for w in catalogue():
        if w.name == name or ("<" in w.name and _pattern(w.name).match(name)):
            return w
    return None


def covers_prefix(prefix: str) -> bool:
    """Whether some entry's name starts with ``prefix``: names the source builds at run time
    (``"ssl.client_hello_" + problem``) are declared one by one or as a pattern."""
    return any(w.name.startswith(prefix) for w in catalogue())


def template_of(name: str) -> str:
    """``name`` with every placeholder written ``<>`` (to compare a pattern with an f-string)."""
    return _PLACEHOLDER.sub("<>", name)


def markdown() -> list:
    """The catalogue as a Markdown table (the README's weird section)."""
    rows = ["| name | stage | meaning |", "|---|---|---|"]
    for w in sorted(catalogue(), key=lambda w: (_STAGES.index(w.stage), w.layer, w.name)):
        rows.append(f"| `{w.name}` | {w.stage} | {w.meaning.replace('|', chr(92) + '|')} |")
    return rows


_STAGES = ("capture", "ingest", "decode", "flows", "reassembly", "content", "protocols")
