"""Oracle parsers for the shared pcap corpus (../shared/corpus).

Pure functions only: nothing here imports ``inspector``.  The corpus layout and
the meaning of each oracle are described in ``<corpus>/README.md``.

Public API
----------
corpus_root()                      -> Path   (env INSPECTOR_CORPUS, else ../shared/corpus)
load_index(root=None)              -> list[dict]   INDEX.jsonl rows (+ normalised aliases)
read_zeek_log(path, typed=True)    -> list[dict]   Zeek ASCII TSV (or zeek-cut *.cut) rows
zeek_conn_baselines(index)         -> list[(row, conn_log_path)]
parse_ndpi_out(path)               -> list[dict]   nDPI ``ndpiReader -v 2`` flow lines
parse_ndpi_summary(path)           -> dict[str, (pkts, bytes, flows)]
read_nfstream_csv(path)            -> list[dict]
tcpdump_out_record_count(path)     -> int
ip_proto_number(name)              -> int | None   (nDPI L4 token -> IP protocol number)

Grammar notes (verified against every file in the corpus):

* INDEX.jsonl uses ``dest`` / ``truncated`` / ``tags`` for what INDEX.tsv calls
  ``corpus_path`` / ``file_truncated`` / ``features``.  ``load_index`` adds the
  TSV names as aliases so callers can use either.
* nDPI .out: flow lines are ``\\t<n>\\t<L4> <src>:<sport> <->|-> <dst>:<dport> [..][..]``.
  There are two numbered flow sections: the main one and, after a line
  ``Undetected flows:``, a second one numbered again from 1.  They do not
  overlap; both together are the flow table.  Host-stat tables (``JA4C``
  etc.) also have ``\\t<n>\\t`` lines but continue with a space + address:
  they are not flows.  IPv6 addresses are bracketed ``[2001:db8::1]:443``.
  The L4 token is a name (TCP, UDP, ICMP, ICMPV6, IGMP, ESP, OSPF, SCTP, VRRP
  ...) or a bare IP protocol number (``115``, ``0``).  Portless protocols show
  port 0.  ``[proto: ...]`` may carry a tunnel prefix (``GTP:``, ``VXLAN:``,
  ``GRE:``) meaning nDPI decapsulated that tunnel and the 5-tuple is the
  *inner* one.  Bytes are whole-frame bytes (pcap ``len``).  ``->`` flows
  have ``0 pkts/0 bytes`` on the B side.  Files may contain non-UTF-8 bytes
  (fuzz captures): read as latin-1.  Two .out files are empty (badpackets,
  fuzz-2021-06-07-c6c72a0a56): no flows.
* nDPI's src is NOT guaranteed to be the connection originator (it is the
  side nDPI decided is the client, which can flip), so match either direction.
* tcpdump .out: each record starts with ``^\\s*<n>  `` (``-#``); continuation
  lines do not.  We count the records numbered 1, 2, 3, ... in sequence.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

# --------------------------------------------------------------------------
# Corpus location / index
# --------------------------------------------------------------------------

CORPUS_ENV = "INSPECTOR_CORPUS"


def corpus_root() -> Path:
    """The corpus directory: $INSPECTOR_CORPUS, else <repo>/../shared/corpus."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def load_index(root: Path | str | None = None) -> list[dict]:
    """Rows of INDEX.jsonl, with TSV-style aliases added.

    Every row gets ``corpus_path`` (= ``dest``), ``file_truncated``
    (= ``truncated``, '' when the file is complete), ``features`` (= ``tags``)
    and ``abspath`` (absolute path of the capture).
    """
    root = Path(root) if root is not None else corpus_root()
    rows = []
    with open(root / "INDEX.jsonl", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            r.setdefault("corpus_path", r.get("dest"))
            r.setdefault("file_truncated", r.get("truncated", "") or "")
            r.setdefault("features", r.get("tags", []))
            r["abspath"] = str(root / r["corpus_path"])
            rows.append(r)
    return rows


def oracle_paths(row: dict, root: Path | str | None = None) -> list[Path]:
    root = Path(root) if root is not None else corpus_root()
    return [root / p for p in row.get("oracle_corpus_paths", [])]


def zeek_conn_baselines(index: Iterable[dict], root: Path | str | None = None,
                        include_cut: bool = False) -> list[tuple[dict, Path]]:
    """(index row, conn.log path) for every Zeek trace with a full conn.log.

    A trace used by two tests yields two pairs (one per baseline).  zeek-cut
    files (``conn.log.cut``) hold only some columns and are left out unless
    ``include_cut``.  ``conn-all.log``/``conn-limited.log`` (expire-all-timers)
    are script-altered and left out.
    """
    out = []
    for r in index:
        if r.get("source") != "zeek":
            continue
        for p in oracle_paths(r, root):
            if p.name == "conn.log" or (include_cut and p.name == "conn.log.cut"):
                out.append((r, p))
    return out


# --------------------------------------------------------------------------
# Zeek ASCII logs
# --------------------------------------------------------------------------

_ZEEK_HEX_ESC = re.compile(r"\\x([0-9a-fA-F]{2})")


def _zeek_unescape(s: str) -> str:
    if "\\x" not in s:
        return s
    return _ZEEK_HEX_ESC.sub(lambda m: chr(int(m.group(1), 16)), s)


def _zeek_convert(val: str, typ: str | None, set_sep: str, empty: str,
                  unset: str, typed: bool) -> Any:
    if val == unset:
        return None
    is_container = bool(typ) and (typ.startswith("set[") or typ.startswith("vector[")
                                  or typ.startswith("table["))
    if is_container:
        if val == empty:
            return []
        inner = typ[typ.index("[") + 1:-1]
        return [_zeek_convert(v, inner, set_sep, empty, unset, typed)
                for v in val.split(set_sep)]
    if val == empty:
        return ""
    if not typed or typ is None:
        return _zeek_unescape(val)
    if typ in ("count", "int", "port"):
        try:
            return int(val)
        except ValueError:
            return val
    if typ in ("double", "interval"):
        try:
            return float(val)
        except ValueError:
            return val
    if typ == "time":
        # baselines mask timestamps as XXXXXXXXXX.XXXXXX
        try:
            return float(val)
        except ValueError:
            return val
    if typ == "bool":
        return {"T": True, "F": False}.get(val, val)
    return _zeek_unescape(val)


def read_zeek_log(path: Path | str, typed: bool = True) -> list[dict]:
    """Rows of a Zeek ASCII (TSV) log as dicts keyed by the #fields names.

    * unset ('-' or the ``#unset_field`` value) -> None
    * empty ('(empty)' or ``#empty_field``) -> '' for scalars, [] for sets/vectors
    * set[...] / vector[...] -> list, split on ``#set_separator`` (',')
    * with ``typed``: count/int/port -> int, interval/double -> float,
      time -> float when not masked (masked 'XXXXXXXXXX.XXXXXX' stays str),
      bool -> True/False.
    * Also reads zeek-cut output (``*.cut``): no #fields line, the first
      non-comment line is the header; values are then untyped strings
      (with '-' -> None).
    Lines starting with '#' (and the btest '###' banner) are skipped.
    """
    sep = "\t"
    set_sep = ","
    empty = "(empty)"
    unset = "-"
    fields: list[str] | None = None
    types: list[str] | None = None
    rows: list[dict] = []
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        for raw in fh:
            line = raw.rstrip("\n").rstrip("\r")
            if line.startswith("#"):
                if line.startswith("#separator"):
                    v = line.split(" ", 1)[1] if " " in line else line.split(sep, 1)[1]
                    sep = v.encode().decode("unicode_escape")
                elif line.startswith("#"):
                    parts = line.split(sep)
                    key = parts[0]
                    if key == "#set_separator":
                        set_sep = parts[1]
                    elif key == "#empty_field":
                        empty = parts[1]
                    elif key == "#unset_field":
                        unset = parts[1]
                    elif key == "#fields":
                        fields = parts[1:]
                    elif key == "#types":
                        types = parts[1:]
                continue
            if not line.strip():
                continue
            vals = line.split(sep)
            if fields is None:
                # zeek-cut output: header line of column names
                fields = vals
                types = None
                continue
            tlist = types if (types and len(types) == len(fields)) else [None] * len(fields)
            row = {}
            for i, name in enumerate(fields):
                v = vals[i] if i < len(vals) else unset
                row[name] = _zeek_convert(v, tlist[i], set_sep, empty, unset,
                                          typed and tlist[i] is not None)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------
# nDPI ndpiReader -v 2 output
# --------------------------------------------------------------------------

# nDPI L4 names (ndpi_get_ip_proto_name) -> IP protocol number
NDPI_L4 = {
    "ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "AH": 51,
    "ICMPV6": 58, "OSPF": 89, "PIM": 103, "VRRP": 112, "SCTP": 132,
    "IP_IN_IP": 4, "IPV6": 41,
}

_NDPI_FLOW = re.compile(
    r"^\t(?P<n>\d+)\t(?P<l4>[A-Za-z0-9_]+) "
    r"(?P<src>\[[0-9A-Fa-f:.]+\]|[0-9.]+):(?P<sport>\d+) "
    r"(?P<dir><->|->) "
    r"(?P<dst>\[[0-9A-Fa-f:.]+\]|[0-9.]+):(?P<dport>\d+) "
    r"(?P<rest>\[.*)$"
)
_NDPI_COUNTS = re.compile(
    r"\[(\d+) pkts/(\d+) bytes (<->|->) (\d+) pkts/(\d+) bytes\]")
_NDPI_PROTO = re.compile(r"\[proto: (?:(?P<tun>[A-Za-z]+):)?(?P<ids>[\d.]+)/(?P<names>[^\]]*)\]")
_NDPI_VLAN = re.compile(r"^\[VLAN: (\d+)\]")
_NDPI_HOST = re.compile(r"\[Hostname/SNI: (.*?)\](?=\[|$)")
_NDPI_TLSVER = re.compile(r"\[((?:D?TLSv1(?:\.\d)?|SSLv[23]|TLSv1\.[0-3]))(?: \([^\]]*\))?\]")
_NDPI_SUMMARY = re.compile(r"^(?P<name>[A-Za-z0-9_.+\-]+)\t(\d+)\t(\d+)\t(\d+)$")


def ip_proto_number(l4: str) -> int | None:
    """nDPI L4 token (name or bare number) -> IP protocol number."""
    if l4.isdigit():
        return int(l4)
    return NDPI_L4.get(l4.upper())


def _strip_brackets(addr: str) -> str:
    return addr[1:-1] if addr.startswith("[") else addr


def parse_ndpi_out(path: Path | str) -> list[dict]:
    """Flow lines of an nDPI ``.out`` (both the main and 'Undetected flows' sections).

    Each flow dict has:
      section ('detected' | 'undetected'), n (line number within section),
      l4 (token as written), ip_proto (int | None), src, sport, dst, dport
      (IPv6 without brackets), bidirectional (bool: '<->'), vlan (int | None),
      tunnel ('GTP'/'VXLAN'/'GRE'/... | None), proto_ids (str, e.g. '91.203'),
      master, app (str; app == master when there is only one name),
      src2dst_packets, src2dst_bytes, dst2src_packets, dst2src_bytes
      (whole-frame bytes), packets, bytes (totals), hostname (str | None),
      tls_version (str | None), line (the raw line).
    """
    text = Path(path).read_bytes().decode("latin-1")
    flows: list[dict] = []
    section = "detected"
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.startswith("Undetected flows:"):
            section = "undetected"
            continue
        m = _NDPI_FLOW.match(line)
        if not m:
            continue
        rest = m.group("rest")
        c = _NDPI_COUNTS.search(rest)
        if not c:
            raise ValueError(f"{path}: flow line without pkts/bytes: {line[:200]!r}")
        vm = _NDPI_VLAN.match(rest)
        pm = _NDPI_PROTO.search(rest)
        hm = _NDPI_HOST.search(rest)
        tm = _NDPI_TLSVER.search(rest)
        names = pm.group("names") if pm else ""
        master, _, app = names.partition(".")
        # names like 'Service_Location_Protocol' have no dot; 'TLS.Github' has one
        a_p, a_b, d2, b_p, b_b = c.groups()
        f = {
            "section": section,
            "n": int(m.group("n")),
            "l4": m.group("l4"),
            "ip_proto": ip_proto_number(m.group("l4")),
            "src": _strip_brackets(m.group("src")),
            "sport": int(m.group("sport")),
            "dst": _strip_brackets(m.group("dst")),
            "dport": int(m.group("dport")),
            "bidirectional": m.group("dir") == "<->",
            "vlan": int(vm.group(1)) if vm else None,
            "tunnel": pm.group("tun") if pm else None,
            "proto_ids": pm.group("ids") if pm else None,
            "master": master or None,
            "app": app or master or None,
            "src2dst_packets": int(a_p),
            "src2dst_bytes": int(a_b),
            "dst2src_packets": int(b_p),
            "dst2src_bytes": int(b_b),
            "hostname": hm.group(1) if hm else None,
            "tls_version": tm.group(1) if tm else None,
            "line": line,
        }
        f["packets"] = f["src2dst_packets"] + f["dst2src_packets"]
        f["bytes"] = f["src2dst_bytes"] + f["dst2src_bytes"]
        flows.append(f)
    return flows


def parse_ndpi_summary(path: Path | str) -> dict[str, tuple[int, int, int]]:
    """The per-protocol table ``<Proto>\\t<pkts>\\t<bytes>\\t<flows>`` of an nDPI .out.

    Its totals equal the sum over ``parse_ndpi_out`` flows (checked corpus-wide).
    """
    out: dict[str, tuple[int, int, int]] = {}
    text = Path(path).read_bytes().decode("latin-1")
    for line in text.split("\n"):
        m = _NDPI_SUMMARY.match(line.rstrip("\r"))
        if m and not line.startswith("\t"):
            out[m.group("name")] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return out


# --------------------------------------------------------------------------
# NFStream CSV
# --------------------------------------------------------------------------

_NF_INT = ("id", "bidirectional_packets", "bidirectional_bytes",
           "application_is_guessed", "application_confidence")


def read_nfstream_csv(path: Path | str) -> list[dict]:
    """Rows of an NFStream results CSV; numeric columns converted to int."""
    rows = []
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for r in csv.DictReader(fh):
            for k in _NF_INT:
                if k in r and r[k] not in (None, ""):
                    try:
                        r[k] = int(r[k])
                    except ValueError:
                        pass
            rows.append(r)
    return rows


# --------------------------------------------------------------------------
# tcpdump .out
# --------------------------------------------------------------------------

_TCPDUMP_REC = re.compile(rb"^\s*(\d+)  ")


def tcpdump_out_record_count(path: Path | str) -> int:
    """Number of records in a ``tcpdump -#`` output: lines numbered 1, 2, 3 ... in order.

    Continuation lines (-v, hex dumps) never start with the next record number
    followed by two spaces, so counting only the in-sequence numbers is robust.
    """
    expect = 1
    for line in Path(path).read_bytes().split(b"\n"):
        m = _TCPDUMP_REC.match(line)
        if m and int(m.group(1)) == expect:
            expect += 1
    return expect - 1


# --------------------------------------------------------------------------
# Convenience
# --------------------------------------------------------------------------

def detect_format(path: Path | str) -> str:
    """'pcap' | 'pcap-ns' | 'pcapng' | 'gzip' | 'unknown' from the magic number."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        return "pcap"
    if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return "pcap-ns"
    if magic == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    return "unknown"


# --------------------------------------------------------------------------
# Comparison helpers (pure: our flows are plain dicts with the inspector's
# conn.log-like keys; nothing here imports inspector)
# --------------------------------------------------------------------------

import ipaddress  # noqa: E402
import math  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402

#: conn.log fields compared per matched connection
CONN_FIELDS = ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
               "orig_bytes", "resp_bytes", "conn_state")

#: IP protocols whose nDPI/NFStream flow key has ports
PORTED = (6, 17)


def norm_addr(a: Any) -> Any:
    """Canonical text of an IP address (IPv6 compressed, lower case)."""
    if a is None:
        return None
    s = str(a)
    try:
        return ipaddress.ip_address(s.strip("[]")).compressed
    except ValueError:
        return s


def norm_val(v: Any) -> Any:
    """None/NaN -> None, numpy/pandas scalars -> int/float/bool/str."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return int(v)
    return v


def flow_ip_proto(f: dict) -> int | None:
    """IP protocol number of a conn-like flow dict."""
    p = norm_val(f.get("ip_proto"))
    if isinstance(p, int):
        return p
    proto = f.get("proto")
    if proto == "tcp":
        return 6
    if proto == "udp":
        return 17
    if proto == "icmp":
        return 58 if ":" in str(f.get("id.orig_h", "")) else 1
    return None


def conn_key(f: dict) -> tuple:
    """(proto, orig_h, orig_p, resp_h, resp_p, ip_proto-for-unknown_transport).

    Zeek logs every non-TCP/UDP/ICMP protocol as ``unknown_transport`` with
    ports 0, so the IP protocol number is part of the key only for those.
    """
    proto = f.get("proto")
    extra = flow_ip_proto(f) if proto == "unknown_transport" else None
    return (proto, norm_addr(f.get("id.orig_h")), norm_val(f.get("id.orig_p")),
            norm_addr(f.get("id.resp_h")), norm_val(f.get("id.resp_p")), extra)


def reverse_key(k: tuple) -> tuple:
    return (k[0], k[3], k[4], k[1], k[2], k[5])


def key_str(k: tuple) -> str:
    proto, oh, op, rh, rp, ipp = k
    fmt = lambda h, p: f"[{h}]:{p}" if h and ":" in h else f"{h}:{p}"  # noqa: E731
    s = f"{proto} {fmt(oh, op)} -> {fmt(rh, rp)}"
    return s + (f" ip_proto={ipp}" if ipp is not None else "")


def conn_diff(base: dict, ours: dict, fields: Iterable[str] = CONN_FIELDS,
              swap: bool = False) -> list[str]:
    """Names of ``fields`` whose values differ (ours swapped orig<->resp if ``swap``)."""
    out = []
    for fld in fields:
        of = fld
        if swap:
            of = fld.replace("orig_", "\0").replace("resp_", "orig_").replace("\0", "resp_")
        if norm_val(base.get(fld)) != norm_val(ours.get(of)):
            out.append(fld)
    return out


def _greedy_pairs(left: list[int], right: list[int], cost) -> list[tuple[int, int]]:
    """Pair items of ``left`` with ``right`` by increasing cost (greedy)."""
    if len(left) == 1 and len(right) == 1:
        return [(left[0], right[0])]
    cands = sorted((cost(i, j), li, ri, i, j)
                   for li, i in enumerate(left) for ri, j in enumerate(right))
    used_l, used_r, pairs = set(), set(), []
    for _c, _li, _ri, i, j in cands:
        if i in used_l or j in used_r:
            continue
        used_l.add(i)
        used_r.add(j)
        pairs.append((i, j))
    return pairs


def compare_conn(baseline: list[dict], ours: list[dict],
                 fields: Iterable[str] = CONN_FIELDS) -> list[dict]:
    """Match Zeek conn.log rows with our flows and classify each.

    Returns one result per baseline row, plus one ``extra`` result per flow of
    ours that matched no baseline row.  Each result is a dict:

      kind:     'agree' | 'fields' | 'direction' | 'missing' | 'extra'
      key:      conn_key of the baseline row (of our flow for 'extra')
      baseline: the baseline row (None for 'extra')
      ours:     the matched flow of ours (None for 'missing')
      fields:   differing field names ('fields'/'direction'); for
                'direction', the differences after swapping our orig/resp.

    Matching: multiset on the exact key, pairing same-key rows greedily by
    fewest differing fields.  A baseline row left over whose *reversed* key is
    in our flows is a 'direction' disagreement (the originator differs).
    """
    fields = tuple(fields)
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for j, f in enumerate(ours):
        by_key[conn_key(f)].append(j)
    base_by_key: dict[tuple, list[int]] = defaultdict(list)
    for i, b in enumerate(baseline):
        base_by_key[conn_key(b)].append(i)

    result: list[dict | None] = [None] * len(baseline)
    used: set[int] = set()
    for k, bidx in base_by_key.items():
        oidx = by_key.get(k, [])
        if not oidx:
            continue
        pairs = _greedy_pairs(bidx, oidx,
                              lambda i, j: len(conn_diff(baseline[i], ours[j], fields)))
        for i, j in pairs:
            used.add(j)
            d = conn_diff(baseline[i], ours[j], fields)
            result[i] = {"kind": "fields" if d else "agree", "key": k,
                         "baseline": baseline[i], "ours": ours[j], "fields": d}
    # leftovers: reversed tuple?
    for i, b in enumerate(baseline):
        if result[i] is not None:
            continue
        k = conn_key(b)
        rk = reverse_key(k)
        cand = [j for j in by_key.get(rk, []) if j not in used]
        if cand:
            j = min(cand, key=lambda j: len(conn_diff(b, ours[j], fields, swap=True)))
            used.add(j)
            result[i] = {"kind": "direction", "key": k, "baseline": b, "ours": ours[j],
                         "fields": conn_diff(b, ours[j], fields, swap=True)}
        else:
            result[i] = {"kind": "missing", "key": k, "baseline": b, "ours": None,
                         "fields": []}
    out = [r for r in result if r is not None]
    for j, f in enumerate(ours):
        if j not in used:
            out.append({"kind": "extra", "key": conn_key(f), "baseline": None,
                        "ours": f, "fields": []})
    return out


def disagreement_labels(res: dict) -> list[str]:
    """The 'fields' a conn comparison result disagrees on, pseudo-fields included.

    'missing' / 'direction' / 'extra' results carry that word as their label
    (plus, for 'direction', the fields that also differ after swapping).
    """
    if res["kind"] == "agree":
        return []
    if res["kind"] == "fields":
        return list(res["fields"])
    return [res["kind"]]


# ---- whole-frame (nDPI / NFStream) comparisons ---------------------------

def _ours_endpoints(f: dict):
    return (norm_addr(f.get("id.orig_h")), norm_val(f.get("id.orig_p")),
            norm_addr(f.get("id.resp_h")), norm_val(f.get("id.resp_p")))


def _l2(f: dict, side: str) -> int:
    v = norm_val(f.get(f"{side}_l2_bytes"))
    return int(v) if v is not None else 0


def _pk(f: dict, side: str) -> int:
    v = norm_val(f.get(f"{side}_pkts"))
    return int(v) if v is not None else 0


def ours_l2_view(ours: list[dict]) -> list[dict]:
    """Our flows as nDPI/NFStream see them.

    TCP/UDP flows stay one per 5-tuple.  Port-less protocols (ICMP, IGMP,
    ESP, SCTP, ...) are aggregated per (ip_proto, address pair), because
    nDPI and NFStream key them without ports (nDPI prints port 0) whereas a
    Zeek-like ICMP 'connection' is split by type/code.  Each view row:
    ip_proto, a, ap, b, bp (a = our originator), a_pkts, a_bytes, b_pkts,
    b_bytes (whole frames), vlan, n (number of our flows merged).
    """
    out: list[dict] = []
    agg: dict[tuple, dict] = {}
    for f in ours:
        ipp = flow_ip_proto(f)
        oh, op, rh, rp = _ours_endpoints(f)
        row = {"ip_proto": ipp, "a": oh, "ap": op, "b": rh, "bp": rp,
               "a_pkts": _pk(f, "orig"), "a_bytes": _l2(f, "orig"),
               "b_pkts": _pk(f, "resp"), "b_bytes": _l2(f, "resp"),
               "vlan": norm_val(f.get("vlan")), "n": 1, "uids": [f.get("uid")]}
        if ipp in PORTED:
            out.append(row)
            continue
        a, b = sorted([str(oh), str(rh)])
        k = (ipp, a, b)
        if k not in agg:
            agg[k] = {"ip_proto": ipp, "a": a, "ap": 0, "b": b, "bp": 0,
                      "a_pkts": 0, "a_bytes": 0, "b_pkts": 0, "b_bytes": 0,
                      "vlan": row["vlan"], "n": 0, "uids": []}
            out.append(agg[k])
        g = agg[k]
        if str(oh) == a:
            g["a_pkts"] += row["a_pkts"]; g["a_bytes"] += row["a_bytes"]  # noqa: E702
            g["b_pkts"] += row["b_pkts"]; g["b_bytes"] += row["b_bytes"]  # noqa: E702
        else:
            g["a_pkts"] += row["b_pkts"]; g["a_bytes"] += row["b_bytes"]  # noqa: E702
            g["b_pkts"] += row["a_pkts"]; g["b_bytes"] += row["a_bytes"]  # noqa: E702
        g["n"] += 1
        g["uids"].append(f.get("uid"))
    return out


def _view_key(ipp, a, ap, b, bp):
    if ipp in PORTED:
        return (ipp, frozenset([(a, ap), (b, bp)]))
    return (ipp, frozenset([a, b]))


def _oriented(v: dict, src: str, sport: Any) -> tuple[int, int, int, int]:
    """View row's counts oriented so that the first pair is ``src``'s side."""
    if v["a"] == src and (v["ip_proto"] not in PORTED or v["ap"] == sport):
        return (v["a_pkts"], v["a_bytes"], v["b_pkts"], v["b_bytes"])
    return (v["b_pkts"], v["b_bytes"], v["a_pkts"], v["a_bytes"])


NDPI_COUNT_FIELDS = ("src2dst_packets", "src2dst_bytes", "dst2src_packets", "dst2src_bytes")


def compare_ndpi(ndpi_flows: list[dict], ours: list[dict]) -> list[dict]:
    """Match nDPI flows to our flows (5-tuple, either direction) and compare counts.

    One result per nDPI flow: kind 'agree' | 'merged' | 'counts' | 'missing'
    ('merged': the nDPI flow equals the sum of several flows of ours with the
    same 5-tuple, i.e. only the flow timeouts differ), ``ndpi``
    (the parsed flow), ``ours`` (the view row, see ``ours_l2_view``, or None),
    ``ours_counts`` (our counts oriented as nDPI's src->dst), ``fields``
    (differing NDPI_COUNT_FIELDS) and ``undirected_agree`` (True when the
    counts agree once the two directions are swapped, i.e. only the
    client/server orientation differs).
    """
    view = ours_l2_view(ours)
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for j, v in enumerate(view):
        by_key[_view_key(v["ip_proto"], v["a"], v["ap"], v["b"], v["bp"])].append(j)
    nd_by_key: dict[tuple, list[int]] = defaultdict(list)
    nkeys = []
    for i, f in enumerate(ndpi_flows):
        src, dst = norm_addr(f["src"]), norm_addr(f["dst"])
        k = _view_key(f["ip_proto"], src, f["sport"], dst, f["dport"])
        nkeys.append((k, src))
        nd_by_key[k].append(i)

    def counts_of(i, j):
        f = ndpi_flows[i]
        return _oriented(view[j], nkeys[i][1], f["sport"])

    def cost(i, j):
        f = ndpi_flows[i]
        c = counts_of(i, j)
        d = sum(1 for a, b in zip(c, (f[x] for x in NDPI_COUNT_FIELDS)) if a != b)
        vl = 0 if (f["vlan"] is None or view[j]["vlan"] in (None, f["vlan"])) else 1
        return (d, vl)

    results: list[dict | None] = [None] * len(ndpi_flows)
    for k, idx in nd_by_key.items():
        cand = by_key.get(k, [])
        if not cand:
            continue
        for i, j in _greedy_pairs(idx, cand, cost):
            f = ndpi_flows[i]
            c = counts_of(i, j)
            exp = tuple(f[x] for x in NDPI_COUNT_FIELDS)
            diff = [x for x, a, b in zip(NDPI_COUNT_FIELDS, c, exp) if a != b]
            results[i] = {"kind": "counts" if diff else "agree", "ndpi": f, "ours": view[j],
                          "ours_counts": c, "fields": diff,
                          "undirected_agree": (c == exp) or ((c[2], c[3], c[0], c[1]) == exp)}
    # Timeout tolerance: one nDPI flow, several flows of ours with that 5-tuple
    # (we split on Zeek's inactivity timeouts / TCP connection reuse, ndpiReader
    # did not): compare with the sum of ours.
    for k, idx in nd_by_key.items():
        cand = by_key.get(k, [])
        if len(idx) != 1 or len(cand) < 2 or results[idx[0]] is None \
                or results[idx[0]]["kind"] == "agree":
            continue
        i = idx[0]
        f = ndpi_flows[i]
        tot = [0, 0, 0, 0]
        for j in cand:
            c = counts_of(i, j)
            tot = [a + b for a, b in zip(tot, c)]
        c = tuple(tot)
        exp = tuple(f[x] for x in NDPI_COUNT_FIELDS)
        if c == exp:
            merged = {"ip_proto": view[cand[0]]["ip_proto"], "a": view[cand[0]]["a"],
                      "ap": view[cand[0]]["ap"], "b": view[cand[0]]["b"], "bp": view[cand[0]]["bp"],
                      "vlan": view[cand[0]]["vlan"], "n": sum(view[j]["n"] for j in cand),
                      "uids": [u for j in cand for u in view[j]["uids"]]}
            results[i] = {"kind": "merged", "ndpi": f, "ours": merged, "ours_counts": c,
                          "fields": [], "undirected_agree": True}
    for i, f in enumerate(ndpi_flows):
        if results[i] is None:
            results[i] = {"kind": "missing", "ndpi": f, "ours": None, "ours_counts": None,
                          "fields": list(NDPI_COUNT_FIELDS), "undirected_agree": False}
    return results  # type: ignore[return-value]


def _find_sum(target: tuple[int, int], items: list[tuple[int, int]],
              max_parts: int = 4, max_items: int = 40) -> list[int] | None:
    """Indices of 2..max_parts ``items`` whose (pkts, bytes) sum to ``target``."""
    from itertools import combinations
    cand = [i for i, (p, b) in enumerate(items) if p <= target[0] and b <= target[1]]
    if len(cand) > max_items:
        cand = cand[:max_items]
    for n in range(2, max_parts + 1):
        if n > 3 and len(cand) > 25:
            break
        for combo in combinations(cand, n):
            if (sum(items[i][0] for i in combo) == target[0]
                    and sum(items[i][1] for i in combo) == target[1]):
                return list(combo)
    return None


def compare_nfstream(nf_rows: list[dict], ours: list[dict]) -> dict:
    """Multiset comparison of (bidirectional_packets, bidirectional_bytes).

    Returns dict: total (NFStream rows), matched (size of the exact multiset
    intersection), merged (NFStream rows accounted for once the two tools'
    different flow timeouts are allowed for: several NFStream rows summing to
    one flow of ours, or one NFStream row equal to the sum of several of
    ours, 2..4 parts), missing (Counter of NFStream pairs left unexplained),
    extra (Counter of our pairs left unexplained), pkts_total_nf /
    pkts_total_ours.
    """
    nf = Counter((r["bidirectional_packets"], r["bidirectional_bytes"]) for r in nf_rows)
    view = ours_l2_view(ours)
    us = Counter((v["a_pkts"] + v["b_pkts"], v["a_bytes"] + v["b_bytes"]) for v in view)
    inter = nf & us
    left_nf = sorted((nf - us).elements(), reverse=True)
    left_us = sorted((us - nf).elements(), reverse=True)
    merged = 0
    # NFStream split (idle 120 s / active 1800 s) where we kept one flow
    for o in list(left_us):
        idx = _find_sum(o, left_nf)
        if idx:
            merged += len(idx)
            left_nf = [x for i, x in enumerate(left_nf) if i not in idx]
            left_us.remove(o)
    # we split (Zeek timeouts, TCP port reuse) where NFStream kept one flow
    for n in list(left_nf):
        idx = _find_sum(n, left_us)
        if idx:
            merged += 1
            left_us = [x for i, x in enumerate(left_us) if i not in idx]
            left_nf.remove(n)
    return {"total": sum(nf.values()), "matched": sum(inter.values()), "merged": merged,
            "missing": Counter(left_nf), "extra": Counter(left_us),
            "pkts_total_nf": sum(p for p, _ in nf.elements()),
            "pkts_total_ours": sum(p for p, _ in us.elements())}


# --------------------------------------------------------------------------
# Known-disagreement list (tests/data/conn_disagreements.yaml)
# --------------------------------------------------------------------------

def load_disagreements(path: Path | str) -> list[dict]:
    """Entries of conn_disagreements.yaml (a list under ``entries:``)."""
    import yaml  # local: keep the parsers importable without pyyaml
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    entries = doc.get("entries", []) if isinstance(doc, dict) else doc
    return list(entries or [])


def _entry_tuple(e: dict):
    t = e.get("tuple", "*")
    if t in (None, "*"):
        return "*"
    if isinstance(t, str):
        raise ValueError(f"tuple must be '*' or a list: {e!r}")
    t = list(t)
    proto, oh, op, rh, rp = t[:5]
    ipp = t[5] if len(t) > 5 else None
    return (proto, norm_addr(oh), op, norm_addr(rh), rp, ipp)


def entry_covers(e: dict, trace: str, baseline: str, res: dict) -> bool:
    """Does YAML entry ``e`` cover the disagreement ``res`` in (trace, baseline)?"""
    if e.get("trace") != trace:
        return False
    if e.get("baseline") not in (None, "*", baseline):
        return False
    t = _entry_tuple(e)
    if t != "*":
        k = res["key"]
        if t[:5] != k[:5] or (t[5] is not None and t[5] != k[5]):
            return False
    flds = e.get("fields", "*")
    if flds in (None, "*"):
        return True
    if isinstance(flds, str):
        flds = [flds]
    return set(disagreement_labels(res)) <= set(flds)


# ==========================================================================
# Application-layer oracles: Zeek ssl/http/dns/quic logs, Suricata EVE
# checks (tls/http/dns/quic), nDPI Hostname/SNI + master protocol.
# Pure functions; our side is plain dicts (flows + log records).
# ==========================================================================

#: Zeek log name -> the inspector log carrying the same records
ZEEK_APP_LOGS = {"ssl": "tls", "http": "http", "dns": "dns", "quic": "quic"}

#: compared fields per Zeek log (asserted ones; see APP_INFO_FIELDS)
ZEEK_APP_FIELDS = {"ssl": ("server_name",), "http": ("host", "method", "uri"),
                   "dns": ("query", "answers"), "quic": ("server_name",)}


def zeek_app_baselines(index: Iterable[dict], root: Path | str | None = None,
                       logs: Iterable[str] = tuple(ZEEK_APP_LOGS)) -> list[tuple[dict, str, Path]]:
    """(index row, log name, path) for every Zeek ssl/http/dns/quic baseline.

    zeek-cut files (``http.log.cut``...) are included: they hold only some
    columns (``read_zeek_log`` reads them untyped).  A trace used by two tests
    yields one triple per baseline.
    """
    logs = tuple(logs)
    out = []
    for r in index:
        if r.get("source") != "zeek":
            continue
        for p in oracle_paths(r, root):
            name = p.name
            for lg in logs:
                if name in (f"{lg}.log", f"{lg}.log.cut"):
                    out.append((r, lg, p))
    return out


def _nstr(v: Any) -> str | None:
    """Scalar log value as text; None/''/'-' -> None."""
    v = norm_val(v)
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) if v else None
    s = str(v)
    return None if s in ("", "-") else s


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, str):
        return [] if v in ("", "-", "(empty)") else v.split(",")
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    return [v]


def norm_answer(a: Any) -> str:
    """A DNS answer as comparable text: addresses canonical, names without the final dot."""
    s = str(a).strip()
    try:
        return ipaddress.ip_address(s).compressed
    except ValueError:
        pass
    if s.endswith(".") and len(s) > 1 and " " not in s:
        s = s[:-1]
    return s


def answer_set(v: Any) -> frozenset:
    """A dns answers value (list / comma string / None) as a set of ``norm_answer`` texts."""
    return frozenset(norm_answer(a) for a in _as_list(v) if a not in (None, ""))


_TXT_HEAD = re.compile(r"TXT (\d+) ")


def _txt_strings(s: str) -> list[str] | None:
    """Zeek's 'TXT <len> <string>[ TXT <len> <string>...]' -> the strings (None if not that form)."""
    out, pos = [], 0
    while pos < len(s):
        m = _TXT_HEAD.match(s, pos)
        if not m:
            return None
        n = int(m.group(1))
        start = m.end()
        out.append(s[start:start + n])
        pos = start + n
        if pos < len(s):
            if s[pos] != " ":
                return None
            pos += 1
    return out if out else None


def answer_atoms(v: Any) -> frozenset:
    """Like ``answer_set`` but TXT answers in Zeek's form are split into their
    character-strings (Suricata logs one rdata per string, empty ones too)."""
    out = set()
    for a in _as_list(v):
        if a is None:
            continue
        t = _txt_strings(str(a)) if str(a).startswith("TXT ") else None
        if t is not None:
            out.update(t)
        elif a != "":
            out.add(norm_answer(a))
    return frozenset(out)


def zeek_app_records(path: Path | str, log: str | None = None) -> list[dict]:
    """Rows of a Zeek ssl/http/dns/quic log (or its zeek-cut file), normalised.

    Each row keeps all its columns and gains ``conn``: (orig_h, orig_p,
    resp_h, resp_p) with canonical addresses, or None when the file has no
    id.* columns (some .cut files: those rows match against the whole trace),
    and ``idx`` (row number).  DNS ``answers`` becomes a list (cut files hold
    a comma string).
    """
    p = Path(path)
    if log is None:
        log = p.name.split(".")[0]
    rows = read_zeek_log(p)
    out = []
    for i, r in enumerate(rows):
        r = dict(r)
        if r.get("id.orig_h") is not None and r.get("id.resp_h") is not None:
            op, rp = norm_val(r.get("id.orig_p")), norm_val(r.get("id.resp_p"))
            r["conn"] = (norm_addr(r["id.orig_h"]), int(op) if op is not None else None,
                         norm_addr(r["id.resp_h"]), int(rp) if rp is not None else None)
        else:
            r["conn"] = None
        if log == "dns" and "answers" in r:
            r["answers"] = _as_list(r["answers"])
        r["idx"] = i
        out.append(r)
    return out


# ---- Suricata test.yaml --------------------------------------------------

def _sv_version(v: Any) -> tuple:
    parts = re.findall(r"\d+", str(v))
    return tuple(int(x) for x in parts) if parts else (0,)


def suricata_newest_checks(doc: dict | None) -> list[tuple[int, dict]]:
    """(check number, filter) of a parsed test.yaml that apply to the newest Suricata.

    Checks whose ``requires`` carries ``lt-version`` are the alternatives for
    older Suricata versions (their newer twin has ``min-version``): left out.
    Only ``filter`` checks are returned (not ``shell``/``file-compare``).
    """
    out = []
    for i, ch in enumerate((doc or {}).get("checks") or []):
        if not isinstance(ch, dict):
            continue
        f = ch.get("filter")
        if not isinstance(f, dict):
            continue
        req = f.get("requires") or ch.get("requires") or {}
        if isinstance(req, dict) and "lt-version" in req:
            continue
        out.append((i, f))
    return out


_SV_IDX = re.compile(r"^(?P<base>[a-z_.]+)\[(?P<i>\d+)\]\.(?P<rest>[a-z_.\[\]0-9]+)$")


def _sv_conn(m: dict) -> dict:
    c = {}
    for k in ("src_ip", "dest_ip"):
        if m.get(k) is not None:
            c[k] = norm_addr(str(m[k]))
    for k in ("src_port", "dest_port"):
        if m.get(k) is not None:
            try:
                c[k] = int(m[k])
            except (TypeError, ValueError):
                pass
    if m.get("proto") is not None:
        c["proto"] = str(m["proto"]).lower()
    return c


#: Suricata EVE event types whose http/dns/tls objects describe a transaction
#: (alerts are left out: they depend on rules that were not copied)
SV_APP_EVENT_TYPES = ("tls", "http", "dns", "quic", "fileinfo")


def suricata_app_expectations(doc: dict | None) -> list[dict]:
    """What the newest-version checks of a test.yaml say about app-layer values.

    One dict per (check, field): ``field`` is one of
      'tls.sni' | 'http.hostname' | 'http.http_method' | 'dns.rrname' |
      'dns.rdata' | 'quic.sni',
    ``value`` (str; for 'dns.rdata' a frozenset of ``norm_answer`` texts),
    ``query`` (dns.rdata: the query name of that record, or None),
    ``rrtypes`` (dns.rdata: the answers' rrtype list), ``conn`` (the
    src_ip/src_port/dest_ip/dest_port/proto the check names, any subset),
    ``event_type``, ``count`` (the check's count), ``check`` (its number).
    Checks with ``count: 0`` are skipped.  Identical expectations (same field,
    value, query and undirected connection; e.g. an http event and the
    fileinfo event of the same transaction, or a DNS request and its
    response) are kept once.
    """
    out, seen = [], set()
    for ci, f in suricata_newest_checks(doc):
        m = f.get("match") or {}
        if not isinstance(m, dict):
            continue
        count = f.get("count", f.get("min-count", 1))
        try:
            count = int(count)
        except (TypeError, ValueError):
            count = 1
        if count == 0:
            continue
        et = m.get("event_type")
        if et not in SV_APP_EVENT_TYPES:
            continue
        conn = _sv_conn(m)
        exps = []
        if et == "tls" and m.get("tls.sni") is not None:
            exps.append(("tls.sni", str(m["tls.sni"]), None, None))
        if m.get("http.hostname") is not None:
            exps.append(("http.hostname", str(m["http.hostname"]), None, None))
        if m.get("http.http_method") is not None:
            exps.append(("http.http_method", str(m["http.http_method"]), None, None))
        if et == "dns":
            qname = m.get("dns.queries[0].rrname", m.get("dns.rrname"))
            for k, v in m.items():
                if re.fullmatch(r"dns\.queries\[\d+\]\.rrname", str(k)) or k == "dns.rrname":
                    exps.append(("dns.rrname", str(v), None, None))
            rd, rt = {}, {}
            for k, v in m.items():
                mm = re.fullmatch(r"dns\.answers\[(\d+)\]\.(rdata|rrtype)", str(k))
                if mm:
                    (rd if mm.group(2) == "rdata" else rt)[int(mm.group(1))] = str(v)
            if rd:
                exps.append(("dns.rdata", frozenset(norm_answer(v) for v in rd.values()),
                             str(qname) if qname is not None else None,
                             tuple(rt.get(i) for i in sorted(rd))))
        if et == "quic":
            for k, v in m.items():
                mm = re.fullmatch(r"quic\.extensions\[(\d+)\]\.name", str(k))
                if mm and v == "server_name":
                    val = m.get(f"quic.extensions[{mm.group(1)}].values[0]")
                    if val is not None:
                        exps.append(("quic.sni", str(val), None, None))
        ukey = frozenset([(conn.get("src_ip"), conn.get("src_port")),
                          (conn.get("dest_ip"), conn.get("dest_port"))])
        for field, value, query, rrtypes in exps:
            sig = (field, value, query, ukey, conn.get("proto"))
            if sig in seen:
                continue
            seen.add(sig)
            out.append({"field": field, "value": value, "query": query, "rrtypes": rrtypes,
                        "conn": conn, "event_type": et, "count": count, "check": ci})
    return out


def suricata_app_tests(index: Iterable[dict], root: Path | str | None = None) -> list[tuple[dict, Path, list[dict]]]:
    """(index row, test.yaml path, expectations) for every capture whose test.yaml
    has at least one app-layer expectation (see ``suricata_app_expectations``)."""
    import yaml  # local: keep the parsers importable without pyyaml
    out = []
    for r in index:
        if r.get("source") != "suricata-verify":
            continue
        for p in oracle_paths(r, root):
            if p.name != "test.yaml":
                continue
            with open(p, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
            exps = suricata_app_expectations(doc)
            if exps:
                out.append((r, p, exps))
    return out


# ---- nDPI flow details ----------------------------------------------------

_NDPI_CONF = re.compile(r"\[Confidence: ([^\]]*)\]")
_NDPI_ALPN = re.compile(r"\[\(Negotiated\) ALPN: ([^\]]*)\]")


def ndpi_flow_app(f: dict) -> dict:
    """Application-layer details of a ``parse_ndpi_out`` flow (from its raw line).

    confidence ('DPI', 'DPI (cache)', 'Match by port', 'Unknown', ... or None),
    dpi (True when the label comes from payload inspection: confidence starts
    with 'DPI'), master, app, hostname, alpn (negotiated ALPN or None).
    """
    line = f.get("line", "")
    c = _NDPI_CONF.search(line)
    a = _NDPI_ALPN.search(line)
    conf = c.group(1) if c else None
    return {"confidence": conf, "dpi": bool(conf and conf.startswith("DPI")),
            "master": f.get("master"), "app": f.get("app"), "hostname": f.get("hostname"),
            "alpn": a.group(1) if a else None}


# ---- our side --------------------------------------------------------------

def ukey(h1: Any, p1: Any, h2: Any, p2: Any) -> frozenset:
    """Undirected connection key {(addr, port), (addr, port)}."""
    return frozenset([(norm_addr(h1), norm_val(p1)), (norm_addr(h2), norm_val(p2))])


def conn_str(conn: tuple | None, arrow: str = "->") -> str:
    if conn is None:
        return "*"
    oh, op, rh, rp = conn
    fmt = lambda h, p: f"[{h}]:{p}" if h and ":" in str(h) else f"{h}:{p}"  # noqa: E731
    return f"{fmt(oh, op)} {arrow} {fmt(rh, rp)}"


def our_app_view(flows: list[dict], logs: dict) -> dict:
    """Index our flows and log records by connection.

    Returns {'uid': {uid: flow}, 'flows': {(ip_proto, ukey): [flow...]},
    'recs': {log: [rec...]}, 'by_conn': {log: {ukey: [rec...]}}} where each
    rec is {'rec': record, 'conn': (orig_h, orig_p, resp_h, resp_p) | None,
    'proto': 'tcp'|'udp'|None, 'uid', 'i'}.  A record's connection comes from
    its uid (the flow), else from its own id.* fields.
    """
    uid2flow = {}
    fby = defaultdict(list)
    for f in flows:
        uid2flow[f.get("uid")] = f
        oh, op, rh, rp = _ours_endpoints(f)
        fby[(flow_ip_proto(f), ukey(oh, op, rh, rp))].append(f)
    recs, by_conn = {}, {}
    for log, lst in (logs or {}).items():
        rl, bc = [], defaultdict(list)
        for i, r in enumerate(lst or []):
            f = uid2flow.get(r.get("uid"))
            if f is not None:
                conn = _ours_endpoints(f)
                proto = f.get("proto")
            elif r.get("id.orig_h") is not None:
                conn = (norm_addr(r.get("id.orig_h")), norm_val(r.get("id.orig_p")),
                        norm_addr(r.get("id.resp_h")), norm_val(r.get("id.resp_p")))
                proto = r.get("proto")
            else:
                conn, proto = None, None
            e = {"rec": r, "conn": conn, "proto": proto, "uid": r.get("uid"), "i": i}
            rl.append(e)
            if conn is not None:
                bc[ukey(*conn)].append(e)
        recs[log] = rl
        by_conn[log] = bc
    return {"uid": uid2flow, "flows": fby, "recs": recs, "by_conn": by_conn}


def _cands(view: dict, log: str, conn: tuple | None) -> list[dict]:
    if conn is None:
        return list(view["recs"].get(log, []))
    return list(view["by_conn"].get(log, {}).get(ukey(*conn), []))


def app_field_equal(field: str, base: Any, ours: Any) -> bool:
    """Equality used for one compared field (answers: as sets; others: text, unset == empty)."""
    if field == "answers":
        return answer_set(base) == answer_set(ours)
    return _nstr(base) == _nstr(ours)


def compare_zeek_app(log: str, baseline: list[dict], view: dict,
                     fields: Iterable[str] | None = None) -> list[dict]:
    """Match Zeek ``log`` rows (``zeek_app_records``) with our records, compare fields.

    Rows are matched within their connection (either direction; rows without
    a 5-tuple against the whole trace), pairing greedily by fewest differing
    fields, then by order.  Our candidates for ssl.log rows are our ``tls``
    records, plus our ``quic`` records on the same connection (Zeek logs the
    TLS handshake carried by QUIC in ssl.log too).

    One result per baseline row: {log, key, kind ('agree' | 'value' |
    'missing'), base, ours (our record or None), ours_log, diff (fields that
    differ; all fields when missing), conn}, then one {kind: 'extra'} result
    per record of ours of that log left unmatched (any connection).
    """
    fields = tuple(fields or ZEEK_APP_FIELDS[log])
    ours_log = ZEEK_APP_LOGS[log]
    results: list[dict | None] = [None] * len(baseline)
    used: set[tuple[str, int]] = set()
    buckets: dict = defaultdict(list)
    for i, b in enumerate(baseline):
        buckets[ukey(*b["conn"]) if b.get("conn") is not None else None].append(i)

    def diff(b, o):
        return [fl for fl in fields if not app_field_equal(fl, b.get(fl), o["rec"].get(fl))]

    # connection-keyed rows first, so that key-less rows take what is left
    for k in sorted(buckets, key=lambda x: x is None):
        bidx = buckets[k]
        conn = baseline[bidx[0]]["conn"] if k is not None else None
        cands = [(ours_log, e) for e in _cands(view, ours_log, conn)]
        if log == "ssl":
            cands += [("quic", e) for e in _cands(view, "quic", conn)
                      if e["proto"] in ("udp", None)]
        cands = [c for c in cands if (c[0], c[1]["i"]) not in used]
        if not cands:
            continue
        ranks = {i: r for r, i in enumerate(bidx)}

        def cost(i, j, cands=cands, ranks=ranks, nb=len(bidx)):
            lg, e = cands[j]
            return (len(diff(baseline[i], e)), lg != ours_log, abs(ranks[i] - j * nb / max(1, len(cands))))
        for i, j in _greedy_pairs(bidx, list(range(len(cands))), cost):
            lg, e = cands[j]
            used.add((lg, e["i"]))
            d = diff(baseline[i], e)
            results[i] = {"log": log, "kind": "value" if d else "agree", "base": baseline[i],
                          "ours": e["rec"], "ours_log": lg, "diff": d, "conn": baseline[i]["conn"]}
    out = []
    for i, b in enumerate(baseline):
        r = results[i]
        if r is None:
            r = {"log": log, "kind": "missing", "base": b, "ours": None, "ours_log": None,
                 "diff": list(fields), "conn": b["conn"]}
        r["key"] = zeek_app_key(log, b)
        out.append(r)
    for e in view["recs"].get(ours_log, []):
        if (ours_log, e["i"]) not in used:
            out.append({"log": log, "kind": "extra", "base": None, "ours": e["rec"], "ours_log": ours_log,
                        "diff": [], "conn": e["conn"], "key": zeek_app_key(log, e["rec"], e["conn"])})
    return out


def zeek_app_key(log: str, rec: dict, conn: tuple | None = None) -> str:
    """Disagreement key: the connection (orig -> resp) plus, for DNS, the query."""
    if conn is None:
        conn = rec.get("conn")
    s = conn_str(conn) if conn is not None else f"uid={rec.get('uid')}"
    if log == "dns":
        s += f" query={_nstr(rec.get('query'))}"
    return s


# ---- Suricata expectations vs our records ------------------------------------

def _conn_matches(exp_conn: dict, conn: tuple | None, proto: str | None) -> bool:
    if not exp_conn:
        return True
    if conn is None:
        return False
    if exp_conn.get("proto") and proto and exp_conn["proto"] != proto:
        return False
    oh, op, rh, rp = conn
    sides = [(exp_conn.get("src_ip"), exp_conn.get("src_port")),
             (exp_conn.get("dest_ip"), exp_conn.get("dest_port"))]

    def ok(side, h, p):
        return (side[0] is None or side[0] == h) and (side[1] is None or side[1] == p)
    return (ok(sides[0], oh, op) and ok(sides[1], rh, rp)) or \
        (ok(sides[0], rh, rp) and ok(sides[1], oh, op))


def strip_port(host: str | None) -> str | None:
    """'example.com:8080' -> 'example.com'; '[::1]:80' -> '::1'; bare IPv6 kept."""
    if host is None:
        return None
    h = host.strip()
    if h.startswith("["):
        return h[1:h.index("]")] if "]" in h else h
    if h.count(":") == 1:
        return h.split(":", 1)[0]
    return h


#: Suricata field -> (our logs searched, our record field)
SV_FIELD_SOURCE = {
    "tls.sni": (("tls", "quic"), "server_name"),
    "quic.sni": (("quic", "tls"), "server_name"),
    "http.hostname": (("http",), "host"),
    "http.http_method": (("http",), "method"),
    "dns.rrname": (("dns",), "query"),
    "dns.rdata": (("dns",), "answers"),
}


def _sv_value_of(field: str, rec: dict):
    src = SV_FIELD_SOURCE[field][1]
    v = rec.get(src)
    if field == "http.hostname":
        v = strip_port(_nstr(v))
        return v.lower() if v else v
    if field == "dns.rdata":
        return frozenset(a.lower() for a in answer_atoms(v))
    if field == "dns.rrname":
        v = _nstr(v)
        return v.lower() if v else v
    return _nstr(v)


def compare_suricata_app(exps: list[dict], view: dict) -> list[dict]:
    """One result per expectation: kind 'agree' | 'value' (records of ours on that
    connection, none with the value) | 'missing' (no record of ours there).

    Matching: our records of the field's logs whose connection fits the
    check's src/dest ip/port/proto (either orientation).  A value agrees when
    at least one such record has it (hostname: port stripped; dns.rdata: the
    check's answers are a subset of a record's answers whose query equals the
    check's query).  Host names, DNS names and rdata compare case-folded:
    Zeek (and inspector, like it) lower-cases DNS names, Suricata keeps the
    wire's case.  ``ours_values`` lists what we had;
    ``ours_count`` how many records agree (Suricata's ``count`` is kept for
    information: its other match fields, not compared here, narrow it).
    """
    out = []
    for x in exps:
        logs, _src = SV_FIELD_SOURCE[x["field"]]
        cands = []
        for lg in logs:
            for e in view["recs"].get(lg, []):
                if lg != logs[0] and x["field"] in ("tls.sni", "quic.sni") and e["proto"] not in ("udp", None):
                    continue
                if _conn_matches(x["conn"], e["conn"], e["proto"]):
                    cands.append(e)
        want = x["value"]
        if x["field"] in ("http.hostname", "dns.rrname"):
            want = want.lower()
        elif x["field"] == "dns.rdata":
            want = frozenset(a.lower() for a in want)
        n_ok, seen = 0, []
        for e in cands:
            v = _sv_value_of(x["field"], e["rec"])
            if x["field"] == "dns.rdata":
                q = _nstr(e["rec"].get("query"))
                if x["query"] is not None and (q or "").lower() != x["query"].lower():
                    continue
                seen.append(sorted(v))
                n_ok += want <= v
            else:
                seen.append(v)
                n_ok += v == want
        kind = "agree" if n_ok else ("value" if seen else "missing")
        c = x["conn"]
        key = conn_str((c.get("src_ip", "*"), c.get("src_port", "*"), c.get("dest_ip", "*"),
                        c.get("dest_port", "*"))) if c else "*"
        if x["field"] == "dns.rdata" and x["query"]:
            key += f" query={x['query']}"
        out.append({"exp": x, "kind": kind, "ours_values": seen, "ours_count": n_ok,
                    "key": key, "field": x["field"]})
    return out


# ---- nDPI vs our flows ------------------------------------------------------

def our_flow_names(view: dict, flows: list[dict]) -> set[str]:
    """Every host name our records give for these flows: TLS/QUIC SNI, HTTP Host
    (with and without port), DNS queries; lower case, no final dot."""
    uids = {f.get("uid") for f in flows}
    names = set()
    for log, fld in (("tls", "server_name"), ("quic", "server_name"), ("http", "host"),
                     ("dns", "query")):
        for e in view["recs"].get(log, []):
            if e["uid"] in uids:
                v = _nstr(e["rec"].get(fld))
                if v:
                    v = v.lower().rstrip(".")
                    names.add(v)
                    if log == "http":
                        names.add(strip_port(v))
    for f in flows:
        v = _nstr(f.get("dst_name"))
        if v and f.get("dst_name_source") in ("sni", "quic_sni", "http_host"):
            names.add(v.lower().rstrip("."))
    return names


def our_flow_services(flows: list[dict]) -> set[str]:
    s = set()
    for f in flows:
        v = _nstr(f.get("service"))
        if v:
            s.update(x.strip() for x in v.split(",") if x.strip())
    return s


def ndpi_key(f: dict) -> str:
    fmt = lambda h, p: f"[{h}]:{p}" if ":" in h else f"{h}:{p}"  # noqa: E731
    return f"{f['l4']} {fmt(f['src'], f['sport'])} <-> {fmt(f['dst'], f['dport'])}"


def compare_ndpi_app(ndpi_flows: list[dict], view: dict, service_map: dict,
                     hostname_masters: Iterable[str], known_services: Iterable[str],
                     tolerated: dict | None = None) -> list[dict]:
    """Hostname/SNI and master-protocol comparison per nDPI flow.

    Only TCP/UDP flows.  Our flows are matched by 5-tuple in either direction
    (all of ours with that tuple: timeouts may split one nDPI flow).

    * field 'hostname': nDPI flows with a Hostname/SNI whose master is in
      ``hostname_masters``; agrees when the name (lower case) is among
      ``our_flow_names``.
    * field 'service': nDPI flows labelled by payload inspection (confidence
      'DPI...'; Unknown, 'Match by port/IP' and custom rules are guesses:
      skipped).  ``service_map``: nDPI protocol -> set of our services; the
      master's and the app's entries together (e.g. 'NetBIOS.SMBv23' -> smb)
      are the expected set, one of which must be in our flow's service.  When
      neither is in the map we must claim none of ``known_services`` except
      ``tolerated[master]`` / ``tolerated[app]``.  The result carries
      ``mapped`` (an expected set exists).
    Result: {field, kind ('agree' | 'value' | 'no-flow'), ndpi (flow),
    app (ndpi_flow_app), expected, ours (names or services), key, mapped}.
    """
    hostname_masters = set(hostname_masters)
    known = set(known_services)
    tolerated = tolerated or {}
    out = []
    for f in ndpi_flows:
        if f["ip_proto"] not in PORTED:
            continue
        a = ndpi_flow_app(f)
        master = a["master"]
        k = (f["ip_proto"], ukey(f["src"], f["sport"], f["dst"], f["dport"]))
        ours = view["flows"].get(k, [])
        key = ndpi_key(f)
        if a["hostname"] and master in hostname_masters:
            exp = a["hostname"].lower().rstrip(".")
            if not ours:
                out.append({"field": "hostname", "kind": "no-flow", "ndpi": f, "app": a,
                            "expected": exp, "ours": None, "key": key, "mapped": True})
            else:
                names = our_flow_names(view, ours)
                out.append({"field": "hostname", "kind": "agree" if exp in names else "value",
                            "ndpi": f, "app": a, "expected": exp, "ours": sorted(names),
                            "key": key, "mapped": True})
        if a["dpi"] and master and master != "Unknown":
            app = a["app"]
            exp = set(service_map.get(master, ())) | set(service_map.get(app, ()))
            mapped = bool(exp)
            if not ours:
                out.append({"field": "service", "kind": "no-flow", "ndpi": f, "app": a,
                            "expected": sorted(exp), "ours": None, "key": key, "mapped": mapped})
                continue
            svc = our_flow_services(ours) & known
            if mapped:
                ok = bool(exp & svc)
            else:
                ok = svc <= set(tolerated.get(master, ())) | set(tolerated.get(app, ()))
            out.append({"field": "service", "kind": "agree" if ok else "value", "ndpi": f, "app": a,
                        "expected": sorted(exp), "ours": sorted(svc), "key": key, "mapped": mapped})
    return out


# ---- app disagreement list (tests/data/app_disagreements.yaml) ----------------

APP_ENTRY_KEYS = ("trace", "key", "field", "class", "reason")


def app_entry_covers(e: dict, trace: str, field: str, key: str, baseline: str | None = None) -> bool:
    """Does an app_disagreements.yaml entry cover this disagreement?

    ``trace``, ``key`` and ``field`` are fnmatch patterns ('*' = any);
    ``baseline`` (optional) narrows a Zeek entry to one baseline file.
    Fields are named '<oracle>.<log>.<field>', e.g. 'zeek.ssl.server_name',
    'zeek.http.extra', 'suricata.dns.rdata', 'ndpi.hostname', 'ndpi.service'.
    """
    from fnmatch import fnmatchcase
    if not fnmatchcase(trace, str(e.get("trace", ""))):
        return False
    b = e.get("baseline")
    if b not in (None, "*") and baseline is not None and not fnmatchcase(baseline, str(b)):
        return False
    if not fnmatchcase(field, str(e.get("field", "*"))):
        return False
    return fnmatchcase(key, str(e.get("key", "*")))


# ---- Zeek conn.log service vs our flow service -------------------------------

def zeek_test_is_bare(row: dict, baseline_path: Path | str) -> bool | None:
    """Did the Zeek test that wrote this baseline run in bare mode (``zeek -b``)?

    Looked up in INDEX ``extra.tests`` by test name (the baseline's directory);
    None when the test is not described there.
    """
    name = Path(baseline_path).parent.name
    for t in (row.get("extra") or {}).get("tests") or []:
        if t.get("name") == name:
            return bool(t.get("bare"))
    return None


def service_set(v: Any, known: Iterable[str]) -> frozenset:
    """A conn ``service`` value ('ssl,http' / list / None) restricted to ``known`` names."""
    known = set(known)
    out = set()
    for x in _as_list(v) if not isinstance(v, str) else v.split(","):
        x = str(x).strip().lower()
        if x in known:
            out.add(x)
    return frozenset(out)


def compare_zeek_service(conn_rows: list[dict], flows: list[dict], known: Iterable[str]) -> list[dict]:
    """Zeek conn.log ``service`` vs our flow ``service``, both restricted to ``known``.

    Rows are matched on the exact conn key (multiset; else reversed).  One
    result per row: {key (conn_str), kind 'agree' | 'value' | 'no-flow',
    expected (sorted list), ours (sorted list or None)}.
    """
    known = set(known)
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for j, f in enumerate(flows):
        by_key[conn_key(f)].append(j)
    used: set[int] = set()
    out = []
    for b in conn_rows:
        k = conn_key(b)
        exp = service_set(b.get("service"), known)
        cand = [j for j in by_key.get(k, []) if j not in used] or \
            [j for j in by_key.get(reverse_key(k), []) if j not in used]
        conn = (k[1], k[2], k[3], k[4])
        if not cand:
            out.append({"key": f"{k[0]} {conn_str(conn)}", "kind": "no-flow",
                        "expected": sorted(exp), "ours": None})
            continue
        j = min(cand, key=lambda j: service_set(flows[j].get("service"), known) != exp)
        used.add(j)
        ours = service_set(flows[j].get("service"), known)
        out.append({"key": f"{k[0]} {conn_str(conn)}", "kind": "agree" if ours == exp else "value",
                    "expected": sorted(exp), "ours": sorted(ours)})
    return out


# --------------------------------------------------------------------------
# the report scripts' command line (tests/conformance_report.py, tests/app_conformance_report.py)
# --------------------------------------------------------------------------

def report_parser(doc: str, oracles: str, oracle_help: str, filter_help: str, limit_help: str):
    """The options both conformance report scripts take; a script adds its own after."""
    import argparse
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--oracle", default=oracles, help=oracle_help)
    ap.add_argument("--filter", help=filter_help)
    ap.add_argument("--limit", type=int, default=None, help=limit_help)
    ap.add_argument("--summary", action="store_true", help="same as --limit 0")
    ap.add_argument("--corpus", help="corpus directory (default: $INSPECTOR_CORPUS or ../shared/corpus)")
    return ap


def report_setup(args, inspector_available) -> tuple:
    """``(corpus root, limit, None)`` for parsed report options, or ``(None, None, 2)`` after saying on
    stderr why the report cannot run (no corpus, no inspector)."""
    import sys
    limit = 0 if args.summary else args.limit
    root = Path(args.corpus) if args.corpus else corpus_root()
    if not root.is_dir():
        print(f"corpus not found: {root}", file=sys.stderr)
        return None, None, 2
    if not inspector_available():
        print("inspector.scan is not importable yet", file=sys.stderr)
        return None, None, 2
    return root, limit, None


def jsonable(o: Any, counters_as_pairs: bool = False) -> Any:
    """``o`` as JSON-ready values: counters as objects (or ``[key, count]`` pairs, for keys that are
    tuples), sets sorted, other values normalised like the comparisons (:func:`norm_val`)."""
    if isinstance(o, Counter):
        if counters_as_pairs:
            return [[jsonable(k, True), v] for k, v in o.items()]
        return dict(o)
    if isinstance(o, dict):
        return {str(k): jsonable(v, counters_as_pairs) for k, v in o.items()}
    if isinstance(o, (set, frozenset)):
        return sorted((jsonable(v, counters_as_pairs) for v in o), key=repr)
    if isinstance(o, (list, tuple)):
        return [jsonable(v, counters_as_pairs) for v in o]
    v = norm_val(o)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)
