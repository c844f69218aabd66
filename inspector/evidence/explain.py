"""One connection told as a story: who talked to whom, how the destination was named and
attributed, what each side did (dissected by tshark through pyshark), what left, and the
Wireshark filter that shows the same packets.

The facts come from the scan's outputs (flows.jsonl, the protocol logs, dns.jsonl,
content.jsonl, alerts.jsonl) and from tshark's dissection of the connection's packets, carved
from the original capture with ``carve``.  Nothing raw that could be personal data is shown:
content samples are masked again (``policy.alerts.mask_samples``), request URIs lose their
query strings and long path segments, DNS query names their long labels, FTP/SMTP arguments
are not shown, and protocol log lines are the scan's already-masked ones.

``explain(uid, scan_dir)`` returns a JSON-able dict; ``render(story)`` the plain text.
"""
from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timezone

from ..domain import is_address
from . import EvidenceError
from .carve import collect, write_pcapng
from .scandir import ScanDir, Selection, destination, naming_answer, select
from .wireshark import display_filter

#: scan service -> (tshark dissector, ports tshark decodes it on by itself)
_DECODE_AS = {"ssl": ("tls", {443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 8443}),
              "http": ("http", {80, 8080, 8000, 3128, 8008, 8088}),
              "ftp": ("ftp", {21}), "smtp": ("smtp", {25, 587}), "ssh": ("ssh", {22}), "dns": ("dns", {53})}
MAX_STEPS = 60
_STATES = {"S0": "attempt, no reply", "S1": "established, not closed", "SF": "established and closed normally",
           "REJ": "rejected", "S2": "established, originator closed", "S3": "established, responder closed",
           "RSTO": "established, originator aborted (RST)", "RSTR": "established, responder aborted (RST)",
           "RSTOS0": "originator sent SYN then RST", "RSTRH": "responder sent SYN-ACK then RST",
           "SH": "originator sent SYN then FIN", "SHR": "responder sent SYN-ACK then FIN", "OTH": "no SYN seen"}
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _iso(ts) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _size(n) -> str:
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _ep(host, port) -> str:
    """host:port, with IPv6 addresses in brackets."""
    h = f"[{host}]" if ":" in str(host) else str(host)
    return h if port is None else f"{h}:{port}"


def scrub_uri(uri: str | None) -> str | None:
    """A request target without what may carry personal data: the query string becomes its
    length, path segments longer than 24 characters and e-mail addresses are masked."""
    if not uri:
        return uri
    from ..content.identifiers import mask
    path, _, query = uri.partition("?")
    path = _EMAIL.sub(lambda m: mask("email", m.group(0).replace("%40", "@")), path)
    segs = [s if len(s) <= 24 else f"{s[:2]}***({len(s)})" for s in path.split("/")]
    out = "/".join(segs)
    return out + (f"?<query, {len(query)} chars>" if query else "")


def scrub_qname(name: str | None, keep: int = 20) -> str | None:
    """A DNS name with the labels left of its registered domain that are longer than ``keep``
    characters masked: host names rarely have such labels, data tunnelled in names does."""
    if not name:
        return name
    from ..domain import registered_domain
    from ..policy.detectors import mask_qname
    return mask_qname(name, registered_domain(name.lower()), keep=keep)


# --------------------------------------------------------------------------------------------
# tshark dissection through pyshark
# --------------------------------------------------------------------------------------------

def _vals(layer, name: str) -> list:
    f = layer.get_field(name)
    if f is None:
        return []
    # tshark shows header line ends as a literal "\\r\\n"
    return [str(x.showname_value).replace("\\r\\n", "").strip() for x in getattr(f, "all_fields", [f])]


def _short(v: str) -> str:
    """'Client Hello (1)' -> 'Client Hello'; 'TLS 1.2 (0x0303)' -> 'TLS 1.2'."""
    return re.sub(r"\s*\((?:0x)?[0-9a-fA-F]+\)$", "", str(v)).strip()


#: command/reply protocols: tshark layer -> (label, command field, reply code field)
_COMMANDS = {"ftp": ("FTP", "request_command", "response_code"), "smtp": ("SMTP", "req_command", "response_code")}


def _events(pkt) -> list:
    """What one dissected packet says, as short phrases (no payload values)."""
    names = [layer.layer_name for layer in pkt.layers]
    ev = []
    if "tcp" in names:
        t = pkt.tcp
        flags = int(str(t.flags), 16)
        syn, ack, fin, rst = flags & 2, flags & 16, flags & 1, flags & 4
        if syn:
            ev.append("TCP SYN-ACK" if ack else "TCP SYN")
        if fin:
            ev.append("TCP FIN")
        if rst:
            ev.append("TCP RST")
    for layer in pkt.layers:
        n = layer.layer_name
        if n == "tls":
            for h in _vals(layer, "handshake_type"):
                h = _short(h)
                if h == "Client Hello":
                    sni = _vals(layer, "handshake_extensions_server_name")
                    vers = [_short(v) for v in _vals(layer, "handshake_extensions_supported_version")]
                    ev.append("TLS Client Hello" + (f" for {sni[0]}" if sni else "")
                              + (f" offering {', '.join(vers)}" if vers else ""))
                elif h == "Server Hello":
                    vers = [_short(v) for v in _vals(layer, "handshake_extensions_supported_version")]
                    ver = vers[0] if vers else _short((_vals(layer, "handshake_version") or ["?"])[0])
                    cs = _short((_vals(layer, "handshake_ciphersuite") or ["?"])[0])
                    ev.append(f"TLS Server Hello: {ver}, {cs}")
                else:
                    ev.append(f"TLS {h}")
            if _vals(layer, "change_cipher_spec") or "Change Cipher Spec" in " ".join(
                    _vals(layer, "record_content_type")):
                ev.append("TLS Change Cipher Spec")
            if _vals(layer, "app_data") or _vals(layer, "record_opaque_type"):
                lens = [int(x) for x in _vals(layer, "record_length") if str(x).isdigit()]
                ev.append(f"TLS application data ({_size(sum(lens))} in records)" if lens else "TLS application data")
            for a in _vals(layer, "alert_message_desc"):
                ev.append(f"TLS alert: {_short(a)}")
        elif n == "http":
            m = _vals(layer, "request_method")
            if m:
                uri = (_vals(layer, "request_uri") or [""])[0]
                host = (_vals(layer, "host") or [""])[0]
                ct = (_vals(layer, "content_type") or [None])[0]
                cl = (_vals(layer, "content_length_header") or [None])[0]
                ev.append(f"HTTP {m[0]} {host}{scrub_uri(uri)}" + (f" ({ct}" if ct else "")
                          + (f", {cl} bytes)" if ct and cl else (")" if ct else "")))
            code = _vals(layer, "response_code")
            if code:
                phrase = (_vals(layer, "response_phrase") or [""])[0]
                ct = (_vals(layer, "content_type") or [None])[0]
                ev.append(f"HTTP {code[0]} {phrase}".rstrip() + (f" ({ct})" if ct else ""))
        elif n == "dns":
            q = (_vals(layer, "qry_name") or [None])[0]
            qt = _short((_vals(layer, "qry_type") or [""])[0])
            if (_vals(layer, "flags_response") or ["0"])[0] in ("1", "True", "Message is a response"):
                answers = _vals(layer, "a") + _vals(layer, "aaaa")
                rc = _short((_vals(layer, "flags_rcode") or [""])[0])
                ev.append(f"DNS answer {qt} {scrub_qname(q)}: " + (", ".join(answers[:4]) if answers else rc or "none"))
            elif q:
                ev.append(f"DNS query {qt} {scrub_qname(q)}")
        elif n in _COMMANDS:
            label, cmd_field, code_field = _COMMANDS[n]
            ev.extend(f"{label} {c}" for c in _vals(layer, cmd_field)[:1])      # the verb, never its argument
            ev.extend(f"{label} reply {c}" for c in _vals(layer, code_field)[:1])
        elif n == "ssh":
            proto = _vals(layer, "protocol")
            if proto:
                ev.append("SSH version exchange")
            mc = _vals(layer, "message_code")
            ev.extend(f"SSH {_short(x)}" for x in mc[:2])
    return ev


def dissect(path: str, flow: dict) -> dict:
    """Dissect a carved slice with tshark (through pyshark): the steps of the conversation.

    Packets that only carry data or acknowledge it fold into one "data" step (per direction
    counts) until the next packet that says something: every handshake, request, response,
    DNS message and close is a step of its own.
    """
    try:
        import pyshark
    except ImportError as e:      # a dependency of the package: only a broken install lacks it
        raise EvidenceError(f"pyshark is not installed: {e}")
    decode_as = {}
    for svc in (flow.get("service") or "").split(","):
        spec = _DECODE_AS.get(svc.strip())
        proto = (flow.get("proto") or "").lower()
        if spec and proto in ("tcp", "udp") and flow.get("id.resp_p") not in spec[1]:
            decode_as[f"{proto}.port=={flow['id.resp_p']}"] = spec[0]
    oh, op = flow.get("id.orig_h"), flow.get("id.orig_p")
    steps = []
    try:
        cap = pyshark.FileCapture(path, keep_packets=False, decode_as=decode_as or None)
    except Exception as e:
        raise EvidenceError(f"tshark could not be started through pyshark: {e}")
    t0 = None
    n = 0
    try:
        for pkt in cap:
            n += 1
            ts = float(pkt.sniff_timestamp)
            t0 = ts if t0 is None else t0
            ips = [layer for layer in pkt.layers if layer.layer_name in ("ip", "ipv6")]
            src = str(ips[-1].src) if ips else None
            l4 = next((layer for layer in reversed(pkt.layers) if layer.layer_name in ("tcp", "udp")), None)
            sport = int(l4.srcport) if l4 is not None else None
            is_orig = src == oh and (sport is None or sport == op or op is None)
            payload = int(pkt.tcp.len) if "tcp" in [x.layer_name for x in pkt.layers] else \
                (int(l4.length) - 8 if l4 is not None and l4.layer_name == "udp" else int(pkt.length))
            ev = _events(pkt)
            d = "orig" if is_orig else "resp"
            rel = round(ts - t0, 6)
            if ev:
                steps.append({"t": rel, "kind": "event", "dir": d, "bytes": max(payload, 0), "what": ev})
                continue
            last = steps[-1] if steps else None
            if last is None or last["kind"] != "data":
                last = {"t": rel, "last": rel, "kind": "data", "orig_packets": 0, "orig_bytes": 0,
                        "resp_packets": 0, "resp_bytes": 0}
                steps.append(last)
            last["last"] = rel
            last[f"{d}_packets"] += 1
            last[f"{d}_bytes"] += max(payload, 0)
    except EvidenceError:
        raise
    except Exception as e:        # tshark died or printed something pyshark cannot read
        raise EvidenceError(f"tshark dissection failed: {type(e).__name__}: {e}")
    finally:
        try:
            cap.close()
        except Exception:
            pass
    import pyshark.tshark.tshark as tsh
    try:
        version = str(tsh.get_tshark_version())
    except Exception:
        version = "?"
    return {"packets": n, "steps": steps, "dissector": f"tshark {version} via pyshark {_pyshark_version()}",
            "decode_as": decode_as}


def _pyshark_version() -> str:
    try:
        from importlib.metadata import version
        return version("pyshark")
    except Exception:
        return "?"


# --------------------------------------------------------------------------------------------
# the story
# --------------------------------------------------------------------------------------------

def attribution(scan: ScanDir, flow: dict) -> dict:
    """Destination address -> the name it was known by (and the DNS answer that gave it) ->
    ASN/organisation/country -> the site's destination group and whether it is allowed."""
    addr, name = destination(flow)
    chain = {"address": addr, "name": name, "name_source": flow.get("dst_name_source"), "dns": None,
             "asn": flow.get("dst_asn"), "org": flow.get("dst_org"), "country": flow.get("dst_country"),
             "group": flow.get("dst_group"), "category": flow.get("dst_category"),
             "allowed": flow.get("dst_allowed"),
             # Encrypted Client Hello: the name on the wire is the provider's public front end
             "name_hidden": bool(flow.get("ech")) or flow.get("dst_name_source") == "sni_outer",
             "facts": list(flow.get("facts") or ())}
    if addr and scan.has("dns.jsonl"):
        recs = [r for r in scan.records("dns.jsonl") if addr in (r.get("answers") or ())]
        ans = naming_answer(recs, addr, name, flow.get("ts") or 0.0)
        if ans is not None:
            chain["dns"] = {"ts": ans.get("ts"), "uid": ans.get("uid"), "client": ans.get("id.orig_h"),
                            "resolver": ans.get("id.resp_h"), "query": scrub_qname(ans.get("query")),
                            "qtype": ans.get("qtype_name"), "answers": [scrub_qname(a) if not is_address(str(a)) else a
                                                                         for a in ans.get("answers") or ()],
                            "capture": ans.get("capture")}
    return chain


def _payload(scan: ScanDir, uid: str) -> dict | None:
    """What left, from content.jsonl: types, classes, record counts, masked samples, hashes."""
    from ..policy.alerts import mask_samples
    recs = scan.content([uid])
    if not recs:
        return None
    r = recs[0]
    return {"direction": r.get("direction"), "payload_type": r.get("payload_type"),
            "payload_types": r.get("payload_types") or [], "payload_encoding": r.get("payload_encoding"),
            "app_bytes_out": r.get("app_bytes_out"), "data": r.get("data") or {}, "records": r.get("records") or {},
            "samples": mask_samples(r.get("samples") or {}),
            "hashes": {k: len(v) for k, v in (r.get("hashes") or {}).items()},
            "edi": r.get("edi_counts") or {}}


def _log_summary(name: str, r: dict) -> str:
    """One masked line per protocol log record (fields the scan already masked)."""
    if name == "http":
        return (f"{r.get('method') or '?'} {r.get('host') or ''}{scrub_uri(r.get('uri')) or ''} -> "
                f"{r.get('status_code')} {r.get('status_msg') or ''}; sent {_size(r.get('request_body_len'))}, "
                f"received {_size(r.get('response_body_len'))}").strip()
    if name == "tls":
        return (f"{r.get('version') or '?'} {r.get('cipher') or ''} server_name={r.get('server_name')} "
                f"established={r.get('established')}")
    if name == "dns":
        return f"{r.get('qtype_name')} {scrub_qname(r.get('query'))} -> {r.get('rcode_name')}"
    if name == "ftp":
        arg = "" if r.get("command") in ("USER", "PASS") else ""
        return f"{r.get('command')}{arg} -> {r.get('reply_code')}"
    if name == "smtp":
        return f"mail from {r.get('mailfrom')} to {', '.join(r.get('rcptto') or [])}; {r.get('last_reply') or ''}"
    if name == "ssh":
        return f"{r.get('client') or '?'} -> {r.get('server') or '?'}"
    keys = [k for k in r if k not in ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "capture")]
    return ", ".join(f"{k}={r[k]}" for k in keys[:6])


def explain(uid: str, scan_dir: str, capture_root: str | None = None, dissect_packets: bool = True) -> dict:
    """The story of connection ``uid`` as a dict (see ``render``)."""
    scan = ScanDir(scan_dir)
    sel = select(scan, uids=[uid])
    flow = sel.flows[uid]
    full = scan.flows([uid])[uid]
    only = Selection(uids=[uid], flows={uid: flow}, labels={uid: ""})
    res = collect(scan, only, capture_root)
    packets = [p for p in res.packets if uid in p.uids]
    span = (packets[0].ts, packets[-1].ts) if packets else None
    filt = display_filter(flow, span=span)
    cap_path = res.resolved.get(flow.get("capture")) or flow.get("capture")
    story = {
        "uid": uid,
        "capture": flow.get("capture"),
        "community_id": flow.get("community_id"),
        "endpoints": {"orig_h": flow.get("id.orig_h"), "orig_p": flow.get("id.orig_p"),
                      "resp_h": flow.get("id.resp_h"), "resp_p": flow.get("id.resp_p"),
                      "proto": flow.get("proto"), "service": flow.get("service"),
                      "direction": flow.get("direction"), "vlan": flow.get("vlan"),
                      "inner_vlan": flow.get("inner_vlan"), "tunnel_parents": flow.get("tunnel_parents") or []},
        "time": {"start": flow.get("ts"), "start_iso": _iso(flow.get("ts")), "duration": flow.get("duration"),
                 "state": full.get("conn_state"), "state_meaning": _STATES.get(full.get("conn_state") or ""),
                 "history": full.get("history")},
        "volume": {"orig_bytes": full.get("orig_bytes"), "resp_bytes": full.get("resp_bytes"),
                   "orig_pkts": full.get("orig_pkts"), "resp_pkts": full.get("resp_pkts")},
        "attribution": attribution(scan, flow),
        "related": [{"uid": u, "relation": sel.related[u][0]} for u in sel.uids[1:] if u in sel.related],
        "logs": {k: [_log_summary(k, r) for r in v[:20]] for k, v in scan.log_lines([uid]).items()},
        "payload": _payload(scan, uid),
        "alerts": [{"alert_id": a.get("alert_id"), "incident_id": a.get("incident_id"),
                    "signature": (a.get("alert") or {}).get("signature"),
                    "severity": ((a.get("alert") or {}).get("metadata") or {}).get("severity_name", [None])[0]}
                   for a in scan.alerts_for([uid])],
        "packets_carved": len(packets),
        "wireshark": {"display_filter": filt,
                      "tshark": f"tshark -r {cap_path} -Y '{filt}'"},
        "dissection": None,
    }
    if dissect_packets and packets:
        with tempfile.TemporaryDirectory(prefix="inspector-explain-") as tmp:
            path = os.path.join(tmp, f"{uid}.pcapng")
            res.packets = packets
            write_pcapng(path, res, only)
            story["dissection"] = dissect(path, flow)
    return story


def render(story: dict) -> str:
    """Plain text for a terminal: short sections, one fact a line."""
    e = story["endpoints"]
    t = story["time"]
    v = story["volume"]
    a = story["attribution"]
    out = []
    svc = f"/{e['service']}" if e.get("service") else ""
    out.append(f"Connection {story['uid']}  ({story['capture']})")
    out.append(f"  {_ep(e['orig_h'], e['orig_p'])} -> {_ep(e['resp_h'], e['resp_p'])} {e['proto']}{svc}, "
               f"{e['direction']}"
               + (f", VLAN {e['vlan']}" if e.get("vlan") is not None else "")
               + (f", inside tunnel {', '.join(e['tunnel_parents'])}" if e.get("tunnel_parents") else ""))
    dur = t.get("duration")
    out.append(f"  started {t['start_iso']}" + (f", lasted {dur:.3f} s" if isinstance(dur, (int, float)) else "")
               + (f"; {t['state']}: {t['state_meaning']}" if t.get("state") else ""))
    out.append(f"  originator sent {_size(v['orig_bytes'])} in {v['orig_pkts']} packets, "
               f"responder sent {_size(v['resp_bytes'])} in {v['resp_pkts']} packets")
    out.append("")
    out.append("Destination")
    named = f"{a['address']}"
    if a.get("name"):
        named += f" is {a['name']} (named by {a.get('name_source') or '?'})"
    out.append(f"  {named}")
    if a.get("name_hidden"):
        out.append("  the real name is hidden: the client used Encrypted Client Hello; the name above is the "
                   "provider's public front end")
    elif a.get("name_source") == "x509":
        out.append("  the client asked for no name: the name above is the one the server's certificate gives")
    if a.get("facts"):
        out.append(f"  facts: {', '.join(a['facts'])}")
    d = a.get("dns")
    if d:
        out.append(f"  <- DNS: {d['client']} asked {d['resolver']} for {d['query']} ({d.get('qtype') or '?'}) at "
                   f"{_iso(d['ts'])}; answer {' -> '.join(str(x) for x in d['answers'])}  (uid {d['uid']})")
    org = ", ".join(str(x) for x in (f"AS{a['asn']}" if a.get("asn") else None, a.get("org"), a.get("country"))
                    if x)
    out.append(f"  -> {org or 'no AS or country data'}")
    grp = a.get("group")
    out.append(f"  -> destination group {grp!r}" + (f" ({a['category']})" if a.get("category") else "")
               + (", allow-listed" if a.get("allowed") else ", not allow-listed") if grp
               else "  -> in no destination group" + (", allow-listed" if a.get("allowed") else ", not allow-listed"))
    for r in story["related"]:
        out.append(f"  related: {r['uid']} ({r['relation']} this connection)")
    out.append("")
    dis = story.get("dissection")
    if dis:
        out.append(f"What happened ({dis['packets']} packets dissected by {dis['dissector']})")
        steps = dis["steps"]
        for s in steps[:MAX_STEPS]:
            if s["kind"] == "data":
                parts = []
                for d, arrow in (("orig", "->"), ("resp", "<-")):
                    n, b = s[f"{d}_packets"], s[f"{d}_bytes"]
                    if n:
                        parts.append(f"{arrow} {n} packet(s), {_size(b)} of data" if b else f"{arrow} {n} ACK(s)")
                out.append(f"  +{s['t']:9.3f}s    " + "; ".join(parts)
                           + (f"  (until +{s['last']:.3f}s)" if s["last"] != s["t"] else ""))
            else:
                out.append(f"  +{s['t']:9.3f}s {'->' if s['dir'] == 'orig' else '<-'} {'; '.join(s['what'])}")
        if len(steps) > MAX_STEPS:
            out.append(f"  ... {len(steps) - MAX_STEPS} more steps (--json for all)")
        out.append("")
    if story["logs"]:
        out.append("Protocol logs")
        for name, lines in story["logs"].items():
            for line in lines[:10]:
                out.append(f"  {name}: {line}")
        out.append("")
    p = story.get("payload")
    out.append("What left")
    if p:
        out.append(f"  {_size(p.get('app_bytes_out'))} of {p.get('payload_type') or 'unknown'}"
                   + (f" ({p['payload_encoding']})" if p.get("payload_encoding") else "")
                   + (f"; types {', '.join(p['payload_types'])}" if p.get("payload_types") else ""))
        rec = p.get("records") or {}
        if any(rec.values()):
            out.append(f"  records: {rec.get('customer', 0)} customer, {rec.get('shipment', 0)} shipment")
        for cls, n in sorted((p.get("data") or {}).items()):
            samples = ", ".join((p.get("samples") or {}).get(cls, []))
            out.append(f"  {cls}: {n} distinct" + (f"  e.g. {samples}" if samples else ""))
        if p.get("edi"):
            out.append(f"  EDI: {', '.join(f'{k} x{n}' for k, n in sorted(p['edi'].items()))}")
    else:
        out.append("  no identifiers or records seen in what this connection carried out")
    if story["alerts"]:
        out.append("")
        out.append("Alerts")
        for al in story["alerts"]:
            ids = " ".join(x for x in (al.get("alert_id"), al.get("incident_id")) if x)
            out.append(f"  [{al.get('severity')}] {al.get('signature')}" + (f"  ({ids})" if ids else ""))
    out.append("")
    out.append("See the same packets in Wireshark")
    out.append(f"  display filter: {story['wireshark']['display_filter']}")
    out.append(f"  {story['wireshark']['tshark']}")
    return "\n".join(out) + "\n"
