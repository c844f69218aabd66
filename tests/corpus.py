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
