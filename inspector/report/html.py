"""The HTML report: one self-contained file that works offline.

No CDN, fonts, images or scripts from anywhere: the CSS and the small script are
inline, every chart is SVG generated here.  A Content-Security-Policy allows only
that style sheet and that script (by their SHA-256), so the page cannot load or
send anything, and even a string that escaped the escaping could not run.

Every string in the report may come from the network (names, organisations,
signatures, evidence): each goes through ``esc`` (``clean`` + ``html.escape``).

Flows are streamed into ``Aggregates`` (bounded), never held.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from .. import __version__
from ..timeutil import format_ts
from ..severity import severity_name, severity_rank
from .format import clean, esc, fmt_bytes, fmt_duration, fmt_int, fmt_ts
from .summary import BYTES, BYTES_IN, CUST, FLOWS, SHIP, Aggregates, alert_counts, allowed_word, sorted_alerts

MAX_ALERT_ROWS = 2000
#: the incident list shows at most this many incidents, each with at most this many alert rows: the page stays
#: a readable height whatever the alert count (the rest is counted and left to incidents.jsonl / alerts.jsonl)
MAX_INCIDENT_ROWS = 50
MAX_ALERTS_PER_INCIDENT = 20


def _num(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------------------------
# Entry points


def write_report(out_path: str, flows, alerts: Optional[list], stats: Optional[dict], site_name: str,
                 content: Optional[Iterable[dict]] = None, title: Optional[str] = None, *, role_of=None,
                 top: int = 20, incidents: Optional[list] = None) -> str:
    """Write the report to ``out_path`` (atomically) and return the path.

    ``flows``: an iterable of flow records (streamed into an ``Aggregates``, not kept), or an
    ``Aggregates`` the caller already fed.  ``alerts``: alert records (EVE style).  ``stats``:
    ``stats.json``.  ``content``: ``content.jsonl`` records, for masked samples and EDI counts.
    ``role_of``: address -> role (e.g. ``site.role``) when ``flows`` are records.  ``incidents``:
    ``incidents.jsonl`` records; when given, the report leads with them (their alerts folded underneath)
    and the flat alert table is collapsed."""
    if isinstance(flows, Aggregates):
        agg = flows
    else:
        agg = Aggregates(role_of=role_of)
        agg.add(flows if flows is not None else ())
    doc = render_report(agg, alerts or [], stats or {}, site_name, content=content, title=title, top=top,
                        incidents=incidents)
    tmp = f"{out_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(doc)
    os.replace(tmp, out_path)
    return out_path


def iter_jsonl(path: str):
    """Records of a JSON-lines file, one at a time (blank and unparsable lines skipped)."""
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def write_report_from_dir(out_dir: str, out_path: Optional[str] = None, site_name: Optional[str] = None,
                          role_of=None, title: Optional[str] = None) -> str:
    """Build ``report.html`` from a scan's output directory (flows streamed from flows.jsonl)."""
    def opt(name):
        p = os.path.join(out_dir, name)
        return p if os.path.exists(p) else None
    stats = {}
    if opt("stats.json"):
        with open(opt("stats.json"), encoding="utf-8") as fh:
            stats = json.load(fh)
    alerts = list(iter_jsonl(opt("alerts.jsonl"))) if opt("alerts.jsonl") else []
    incidents = list(iter_jsonl(opt("incidents.jsonl"))) if opt("incidents.jsonl") else None
    content = iter_jsonl(opt("content.jsonl")) if opt("content.jsonl") else None
    flows = iter_jsonl(opt("flows.jsonl")) if opt("flows.jsonl") else ()
    return write_report(out_path or os.path.join(out_dir, "report.html"), flows, alerts, stats,
                        site_name or stats.get("site") or "site", content=content, title=title, role_of=role_of,
                        incidents=incidents)


# --------------------------------------------------------------------------------------------
# Content (content.jsonl): masked samples per class, EDI messages, EDM matches


class _ContentSummary:
    def __init__(self, content: Optional[Iterable[dict]], max_classes: int = 64, max_samples: int = 5):
        self.samples: dict = {}
        self.conns: Counter = Counter()
        self.edi: Counter = Counter()
        self.edm: Counter = Counter()
        self.encodings: Counter = Counter()
        self.records = 0
        if content is None:
            return
        for c in content:
            if not isinstance(c, dict):
                continue
            self.records += 1
            for k in (c.get("data") or {}):
                if k in self.conns or len(self.conns) < max_classes:
                    self.conns[k] += 1
            for k, vals in (c.get("samples") or {}).items():
                if k not in self.samples and len(self.samples) >= max_classes:
                    continue
                have = self.samples.setdefault(k, [])
                for v in vals if isinstance(vals, list) else [vals]:
                    if len(have) >= max_samples:
                        break
                    if v not in have:
                        have.append(v)
            for k, v in (c.get("edi_counts") or {}).items():
                if k in self.edi or len(self.edi) < max_classes:
                    self.edi[k] += _num(v)
            for k, v in (c.get("edm") or {}).items():
                if k in self.edm or len(self.edm) < max_classes:
                    self.edm[k] += _num(v) if not isinstance(v, (list, dict)) else len(v)
            enc = c.get("payload_encoding")
            if enc and (enc in self.encodings or len(self.encodings) < max_classes):
                self.encodings[enc] += 1


# --------------------------------------------------------------------------------------------
# SVG charts

_CLS_FILL = {"ok": "#0f766e", "bad": "#d97706", "mix": "#7c3aed", "neutral": "#475569", "cust": "#2563eb",
             "ship": "#db2777", "high": "#dc2626", "medium": "#d97706", "low": "#0891b2", "info": "#64748b"}


def _allow_cls(allowed) -> str:
    return {"allowed": "ok", "not allowed": "bad", "partly": "mix"}.get(allowed_word(allowed), "neutral")


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:max(1, chars - 1)] + "\u2026"


def svg_hbars(chart_id: str, title: str, rows: Sequence[Tuple[str, Sequence[Tuple[float, str]], str, str]],
              width: int = 760, label_w: int = 260, value_w: int = 110) -> str:
    """Horizontal bar chart.  ``rows``: (label, [(value, css class)...] stacked segments, value text,
    tooltip).  Labels are cut to fit; the tooltip (SVG <title>) has the full text."""
    if not rows:
        return '<p class="empty">No data.</p>'
    row_h, top = 24, 6
    height = top * 2 + row_h * len(rows)
    maxv = max(sum(v for v, _ in segs) for _, segs, _, _ in rows) or 1
    bar_w = width - label_w - value_w - 8
    out = [f'<svg class="chart hbars" id="{esc(chart_id)}" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>']
    chars = max(8, int(label_w / 6.6))
    for i, (label, segs, vtext, tip) in enumerate(rows):
        y = top + i * row_h
        out.append(f'<g class="row"><title>{esc(tip)}</title>')
        out.append(f'<text class="lbl" x="{label_w - 8}" y="{y + 16}" text-anchor="end">'
                   f'{esc(_fit(clean(label), chars))}</text>')
        out.append(f'<rect class="track" x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 8}" rx="3"/>')
        x = float(label_w)
        for v, cls in segs:
            if v <= 0:
                continue
            w = max(1.5, bar_w * v / maxv)
            out.append(f'<rect class="bar {cls}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                       f'rx="3" fill="{_CLS_FILL.get(cls, "#475569")}"/>')
            x += w
        out.append(f'<text class="val" x="{label_w + bar_w + 8}" y="{y + 16}">{esc(vtext)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    f = raw / 10 ** exp
    for m in (1, 2, 2.5, 5, 10):
        if f <= m:
            return m * 10 ** exp
    return 10 ** (exp + 1)  # pragma: no cover


def _byte_ticks(maxv: float, n: int = 4) -> Tuple[float, List[Tuple[float, str]]]:
    """(axis maximum, [(value, label)]) with round labels in the unit of ``maxv``."""
    unit, div = "B", 1.0
    for u, d in (("KB", 1024.0), ("MB", 1024.0 ** 2), ("GB", 1024.0 ** 3), ("TB", 1024.0 ** 4)):
        if maxv >= d:
            unit, div = u, d
    step = _nice_step(maxv / div / n)
    top = step * math.ceil(maxv / div / step) if maxv > 0 else step
    ticks = []
    k = 0
    while k * step <= top + 1e-9:
        v = k * step
        ticks.append((v * div, f"{v:g} {unit}" if v else "0"))
        k += 1
    return top * div, ticks


_TICK_STEPS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
               2592000, 7776000, 31536000)


def fmt_bucket(seconds: float) -> str:
    """A bucket width in words: ``15 min``, ``1 h``, ``1 day``."""
    s = int(seconds)
    for unit, size in (("week", 604800), ("day", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            n = s // size
            return f"{n} {unit}" + ("s" if n != 1 and unit in ("week", "day") else "")
    return f"{s} s"


def svg_timeline(agg: Aggregates, width: int = 960, height: int = 260) -> str:
    bucket, series = agg.timeline.series(max_bars=96)
    if not series:
        return '<p class="empty">No outbound volume with timestamps.</p>'
    ml, mr, mt, mb = 70, 12, 12, 44
    pw, ph = width - ml - mr, height - mt - mb
    n = len(series)
    maxv = max(a + b for _, a, b in series) or 1
    ymax, ticks = _byte_ticks(maxv)
    slot = pw / n
    gap = 1.0 if slot > 4 else 0.0
    span = series[-1][0] + bucket - series[0][0]
    fmt = "%H:%M" if span <= 86400 else ("%m-%d %H:%M" if span <= 7 * 86400 else "%Y-%m-%d")
    out = [f'<svg class="chart timeline" id="chart-timeline" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="Outbound volume over time">'
           f'<title>Bytes leaving the site per {esc(fmt_bucket(bucket))} (UTC)</title>']
    for v, label in ticks:
        y = mt + ph - ph * v / ymax
        out.append(f'<line class="grid" x1="{ml}" x2="{width - mr}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    for i, (t, a, b) in enumerate(series):
        x = ml + i * slot
        ya = ph * a / ymax
        yb = ph * b / ymax
        tip = (f"{fmt_ts(t)} \u2013 {fmt_ts(t + bucket, with_date=False)} UTC: {fmt_bytes(a + b)} "
               f"({fmt_bytes(b)} to destinations not on the allow list)")
        out.append(f'<g class="tb"><title>{esc(tip)}</title>')
        if a > 0:
            out.append(f'<rect class="bar ok" x="{x + gap / 2:.2f}" y="{mt + ph - ya:.2f}" '
                       f'width="{max(0.5, slot - gap):.2f}" height="{max(0.8, ya):.2f}" fill="{_CLS_FILL["ok"]}"/>')
        if b > 0:
            out.append(f'<rect class="bar bad" x="{x + gap / 2:.2f}" y="{mt + ph - ya - yb:.2f}" '
                       f'width="{max(0.5, slot - gap):.2f}" height="{max(0.8, yb):.2f}" fill="{_CLS_FILL["bad"]}"/>')
        if a <= 0 and b <= 0:
            out.append(f'<rect class="hit" x="{x:.2f}" y="{mt}" width="{slot:.2f}" height="{ph}" fill="transparent"/>')
        out.append("</g>")
    out.append(f'<line class="axisline" x1="{ml}" x2="{width - mr}" y1="{mt + ph}" y2="{mt + ph}"/>')
    t0, t1 = series[0][0], series[-1][0] + bucket
    every = next((c for c in _TICK_STEPS if c >= bucket and (t1 - t0) / c <= 8), _TICK_STEPS[-1])
    t = math.ceil(t0 / every) * every
    while t <= t1:
        x = ml + pw * (t - t0) / (t1 - t0)
        label = format_ts(t, fmt)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}"/>'
                   f'<text class="axis" x="{x:.1f}" y="{mt + ph + 18}" text-anchor="middle">{esc(label)}</text>')
        t += every
    out.append(f'<text class="axis cap" x="{width - mr}" y="{height - 4}" text-anchor="end">UTC \u00b7 one bar = '
               f'{esc(fmt_bucket(bucket))}</text></svg>')
    return "".join(out)


def svg_sankey(agg: Aggregates, width: int = 960) -> str:
    """Local hosts (or roles) on the left, destination organisations on the right; band width is
    proportional to bytes leaving."""
    lnodes, rnodes, edges = agg.sankey(left=10, right=12)
    if not edges:
        return '<p class="empty">No outbound traffic.</p>'
    lx, rx, nw = 210, width - 330, 14
    pad, mt, slot_min, budget = 8, 10, 30, 360
    ltot = Counter()
    rtot = Counter()
    rallow: dict = {}
    for s, o, b, _f, _r, allowed in edges:
        ltot[s] += b
        rtot[o] += b
        rallow.setdefault(o, set()).update(allowed)
    total = sum(ltot.values()) or 1
    scale = budget / total   # pixels per byte: node heights (and so band widths) are proportional to bytes

    def column(nodes, tot):
        hs = [max(2.0, tot[x] * scale) for x in nodes]
        slots = [max(h, slot_min) for h in hs]   # room for the two-line label of a thin node
        return hs, slots, sum(slots) + pad * (len(nodes) - 1)

    lcol, rcol = column(lnodes, ltot), column(rnodes, rtot)
    height = int(2 * mt + max(lcol[2], rcol[2]))

    def layout(nodes, col):
        hs, slots, used = col
        y = mt + (height - 2 * mt - used) / 2
        pos = {}
        for x, h, sl in zip(nodes, hs, slots):
            pos[x] = [y + (sl - h) / 2, h]
            y += sl + pad
        return pos

    lpos, rpos = layout(lnodes, lcol), layout(rnodes, rcol)
    lidx = {x: i for i, x in enumerate(lnodes)}
    ridx = {x: i for i, x in enumerate(rnodes)}
    out = [f'<svg class="chart sankey" id="chart-sankey" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="Bytes leaving, from local hosts to destination organisations">'
           f'<title>Bytes leaving: local hosts or roles (left) to destination organisations (right)</title>']
    # bands: at the left node ordered by right node, at the right node by left node
    lcur = {x: lpos[x][0] for x in lnodes}
    rcur = {x: rpos[x][0] for x in rnodes}
    bands = []
    for s, o, b, f, r, allowed in sorted(edges, key=lambda e: (lidx[e[0]], ridx[e[1]])):
        h0 = lpos[s][1] * b / (ltot[s] or 1)
        y0 = lcur[s]
        lcur[s] += h0
        bands.append([s, o, b, f, r, allowed, y0, h0])
    for band in sorted(bands, key=lambda e: (ridx[e[1]], lidx[e[0]])):
        s, o, b = band[0], band[1], band[2]
        h1 = rpos[o][1] * b / (rtot[o] or 1)
        band.extend([rcur[o], h1])
        rcur[o] += h1
    x0, x1 = lx + nw, rx
    xm = (x0 + x1) / 2
    out.append('<g class="bands">')
    for s, o, b, f, r, allowed, y0, h0, y1, h1 in bands:
        h0, h1 = max(h0, 1.0), max(h1, 1.0)
        cls = _allow_cls(allowed)
        tip = f"{clean(s)} \u2192 {clean(o)}: {fmt_bytes(b)} in {fmt_int(f)} connection{'s' if f != 1 else ''}" + \
            (f", {fmt_int(r)} records" if r else "")
        out.append(f'<path class="band {cls}" data-l="l{lidx[s]}" data-r="r{ridx[o]}" fill="{_CLS_FILL[cls]}" '
                   f'd="M{x0},{y0:.2f} C{xm:.1f},{y0:.2f} {xm:.1f},{y1:.2f} {x1},{y1:.2f} '
                   f'L{x1},{y1 + h1:.2f} C{xm:.1f},{y1 + h1:.2f} {xm:.1f},{y0 + h0:.2f} {x0},{y0 + h0:.2f} Z">'
                   f'<title>{esc(tip)}</title></path>')
    out.append("</g>")
    for x in lnodes:
        y, h = lpos[x]
        meta = agg.host.meta.get(x) or {}
        label = f"{clean(x)}" + (f" ({clean(meta['role'])})" if meta.get("role") else "")
        out.append(f'<g class="node" data-node="l{lidx[x]}"><title>{esc(label)}: {esc(fmt_bytes(ltot[x]))} out'
                   f'</title><rect x="{lx}" y="{y:.2f}" width="{nw}" height="{h:.2f}" rx="2" fill="#334155"/>'
                   f'<text class="lbl" x="{lx - 8}" y="{y + h / 2 - 1:.2f}" text-anchor="end">'
                   f'{esc(_fit(label, 24))}</text><text class="sub" x="{lx - 8}" y="{y + h / 2 + 12:.2f}" '
                   f'text-anchor="end">{esc(fmt_bytes(ltot[x]))}</text></g>')
    for x in rnodes:
        y, h = rpos[x]
        cls = _allow_cls(rallow.get(x, ()))
        meta = agg.org.meta.get(x) or {}
        ccs = ",".join(clean(c) for c, _ in (meta.get("countries") or Counter()).most_common(3) if c != "??")
        sub = f"{fmt_bytes(rtot[x])}" + (f" \u00b7 {ccs}" if ccs else "") + \
            f" \u00b7 {allowed_word(rallow.get(x, ()))}"
        out.append(f'<g class="node" data-node="r{ridx[x]}"><title>{esc(x)}: {esc(sub)}</title>'
                   f'<rect x="{rx}" y="{y:.2f}" width="{nw}" height="{h:.2f}" rx="2" fill="{_CLS_FILL[cls]}"/>'
                   f'<text class="lbl" x="{rx + nw + 8}" y="{y + h / 2 - 1:.2f}">{esc(_fit(clean(x), 40))}</text>'
                   f'<text class="sub" x="{rx + nw + 8}" y="{y + h / 2 + 12:.2f}">{esc(sub)}</text></g>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# HTML pieces


def _badge(word: str) -> str:
    cls = {"allowed": "ok", "not allowed": "bad", "partly": "mix"}.get(word, "neutral")
    return f'<span class="badge {cls}">{esc(word)}</span>'


def _cc(cc: Any) -> str:
    c = clean(cc)
    return "unknown" if not c or c == "??" else c


MIDDOT = " \u00b7 "
ELLIPSIS = "\u2026"


def _muted(text_html: str, small: bool = True) -> str:
    """A muted line (``text_html`` is already escaped)."""
    return f'<div class="muted{" small" if small else ""}">{text_html}</div>' if text_html else ""


def _dash() -> str:
    return '<span class="muted">-</span>'


def _td_num(v: Any, text: Optional[str] = None) -> str:
    n = v if isinstance(v, (int, float)) else 0
    return f'<td class="num" data-v="{n!r}">{esc(text if text is not None else fmt_int(n))}</td>'


def _chips(counter, limit: int = 6) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    parts = [f'<span class="chip">{esc(k, 40)} <b>{esc(fmt_int(v))}</b></span>' for k, v in items[:limit]]
    if len(items) > limit:
        parts.append(f'<span class="chip more">+{len(items) - limit}</span>')
    return "".join(parts)


def _section(sid: str, title: str, body: str, lead: str = "") -> str:
    return (f'<section class="card" id="{sid}"><h2>{esc(title)}</h2>' +
            (f'<p class="lead">{lead}</p>' if lead else "") + body + "</section>")


def _alert_time(a: dict) -> Tuple[float, str]:
    ts = a.get("timestamp")
    if ts is None:
        ts = a.get("ts")
    if isinstance(ts, (int, float)) and math.isfinite(ts):
        return float(ts), fmt_ts(ts)
    s = clean(ts)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp(), dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return 0.0, _fit(s, 32)


def _two_lines(ts_text: str) -> str:
    """``YYYY-MM-DD HH:MM:SS`` as the date over a muted time."""
    date, _, rest = ts_text.partition(" ")
    return f"{esc(date)}{_muted(esc(rest))}" if rest else esc(ts_text)


def _code(value: Any, limit: int) -> str:
    text = value if not isinstance(value, (dict, list, tuple)) else json.dumps(value, default=str, ensure_ascii=False)
    return f"<code>{esc(text, limit)}</code>"


def _more(n: int) -> str:
    return f'<span class="muted"> +{n} more</span>' if n > 0 else ""


def _evidence(ev: Any, depth: int = 0) -> str:
    """Masked evidence as it comes: a mapping of class -> samples, a list, or text."""
    if ev is None or ev == {} or ev == []:
        return _dash()
    if depth > 2 or not isinstance(ev, (dict, list, tuple)):
        return _code(ev, 500 if depth == 0 else 300)
    parts = []
    if isinstance(ev, dict):
        items = list(ev.items())
        for k, v in items[:24]:
            if isinstance(v, (list, tuple)):
                vals = "".join(_code(x, 120) for x in list(v)[:8]) + _more(len(v) - 8)
            elif isinstance(v, dict):
                vals = _evidence(v, depth + 1)
            else:
                vals = _code(v, 200)
            parts.append(f'<div class="ev"><span class="ev-k">{esc(k, 40)}</span> {vals}</div>')
        extra = len(items) - 24
    else:
        for x in list(ev)[:24]:
            inner = _evidence(x, depth + 1) if isinstance(x, (dict, list, tuple)) else _code(x, 200)
            parts.append(f'<div class="ev">{inner}</div>')
        extra = len(ev) - 24
    if extra > 0:
        parts.append(f"<div>{_more(extra)}</div>")
    if depth == 0 and len(parts) > 3:
        return "".join(parts[:3]) + f'<details><summary>{len(parts) - 3} more</summary>{"".join(parts[3:])}</details>'
    return "".join(parts)


def _alert_row(a: dict) -> str:
    """One alert as a table row (severity, time, signature, endpoints, records, bytes, masked evidence)."""
    al = a.get("alert") if isinstance(a.get("alert"), dict) else {}
    rank = severity_rank(al.get("severity"))
    sev = severity_name(al.get("severity"))
    dest = a.get("destination") if isinstance(a.get("destination"), dict) else {}
    recs = a.get("records") if isinstance(a.get("records"), dict) else {}
    data = a.get("data") if isinstance(a.get("data"), dict) else {}
    tnum, ttext = _alert_time(a)
    cust, ship = _num(recs.get("customer")), _num(recs.get("shipment"))
    dname = dest.get("name") or a.get("dest_ip")
    dparts = (dest.get("org"), _cc(dest.get("country")) if dest.get("country") else None, dest.get("group"),
              f"AS{clean(dest.get('asn'))}" if dest.get("asn") else None)
    dsub = MIDDOT.join(clean(x) for x in dparts if x)
    dport = a.get("dest_port")
    proto = " ".join(clean(x) for x in (a.get("proto"), a.get("app_proto")) if x)
    uids = a.get("uids") if isinstance(a.get("uids"), list) else []
    ids = " ".join(clean(u) for u in uids[:4]) + (" " + ELLIPSIS if len(uids) > 4 else "")
    sid = al.get("signature_id")
    sig_meta = MIDDOT.join(x for x in (f"sid {clean(sid)}" if sid is not None else "", clean(al.get("category")))
                           if x)
    src = esc(a.get("src_ip"), 64) + (":" + esc(a.get("src_port"), 8) if a.get("src_port") is not None else "")
    dline = esc(dname, 120) + (":" + esc(dport) if dport is not None else "")
    pline = esc(proto) + ((MIDDOT + esc(ids)) if ids else "")
    recs_text = f"{fmt_int(cust)} / {fmt_int(ship)}" if cust or ship else ""
    chips = _chips(Counter({k: _num(v) for k, v in data.items()}), 6)
    chips = f'<div class="chips">{chips}</div>' if chips else ""
    ev_html = _evidence(a.get("evidence"))
    if chips and ev_html == _dash():
        ev_html = ""
    return (f'<tr data-sev="{rank}">'
            f'<td data-v="{rank}"><span class="sev sev-{sev}">{esc(sev)}</span></td>'
            f'<td data-v="{tnum!r}" class="nowrap">{_two_lines(ttext)}</td>'
            f'<td><div class="sig">{esc(al.get("signature"), 200)}</div>{_muted(esc(sig_meta))}</td>'
            f'<td class="nowrap"><code>{src}</code></td>'
            f'<td><div class="dst">{dline}</div>{_muted(esc(dsub, 160))}{_muted(pline)}</td>'
            f'{_td_num(cust + ship, recs_text)}'
            f'{_td_num(_num(a.get("bytes_out")), fmt_bytes(a.get("bytes_out")))}'
            f'<td class="evidence">{chips}{ev_html}</td></tr>')


_ALERT_HEAD = ('<thead><tr><th data-sort="num" aria-sort="ascending">Severity</th><th data-sort="num">Time (UTC)</th>'
               '<th data-sort="text">Signature</th><th data-sort="text">Source</th><th data-sort="text">Destination'
               '</th><th data-sort="num">Records<br><span class="muted">cust / ship</span></th>'
               '<th data-sort="num">Bytes out</th><th>Data and evidence (masked)</th></tr></thead>')


def _alerts_section(alerts: list, collapsed: bool = False) -> str:
    counts = alert_counts(alerts)
    if not alerts:
        return _section("alerts", "Alerts", '<p class="empty ok-text">No alerts.</p>')
    rows = sorted_alerts(alerts)
    shown = rows[:MAX_ALERT_ROWS]
    toggles = "".join(
        f'<label class="sevtoggle sev-{severity_name(r)}"><input type="checkbox" checked '
        f'data-sev-toggle="{r}"> {severity_name(r)} <b>{counts.get(r, 0)}</b></label>'
        for r in (1, 2, 3, 4, 5) if counts.get(r))
    head = ('<div class="controls"><input type="search" id="alert-filter" placeholder="Filter alerts: signature, '
            'host, destination, evidence\u2026" aria-label="Filter alerts" autocomplete="off">'
            f'{toggles}<span class="count" id="alert-count">{len(shown)} alerts</span></div>')
    more = (f'<p class="muted">{len(rows) - len(shown)} more alerts not shown (see alerts.jsonl).</p>'
            if len(rows) > len(shown) else "")
    table = (f'<div class="tablewrap"><table class="sortable data alerts" id="alerts-table">{_ALERT_HEAD}<tbody>'
             f'{"".join(_alert_row(a) for a in shown)}</tbody></table></div>')
    if collapsed:
        return _section("alerts", "All alerts",
                        f'<details><summary>Show the {fmt_int(len(rows))} alerts as one table</summary>'
                        f'{head}{table}{more}</details>',
                        "Every alert of the run, most severe first (each is also listed under its incident above).")
    return _section("alerts", "Alerts", head + table + more,
                    "Most severe first; click a column to sort, type to filter. Evidence is masked as in "
                    "alerts.jsonl.")


def _incident_figures(inc: dict) -> str:
    recs = inc.get("records") if isinstance(inc.get("records"), dict) else {}
    cust, ship = _num(recs.get("customer")), _num(recs.get("shipment"))
    first, last = inc.get("first_ts"), inc.get("last_ts")
    parts = [f"{fmt_int(inc.get('flows'))} connections", f"{fmt_bytes(inc.get('bytes_out'))} out"]
    if cust or ship:
        parts.append(f"{fmt_int(cust)} customer / {fmt_int(ship)} shipment records (distinct)")
    if isinstance(first, (int, float)) and isinstance(last, (int, float)):
        parts.append(f"{fmt_ts(first)} \u2192 {fmt_ts(last)} UTC")
    apps = inc.get("app_protos") if isinstance(inc.get("app_protos"), list) else []
    if apps:
        parts.append(" ".join(clean(x) for x in apps[:4]))
    return esc(MIDDOT.join(parts))


def _incidents_section(incidents: list, alerts: list) -> str:
    """Incidents first: one block per incident (most severe, then most records), its alerts collapsed under
    it; at most ``MAX_INCIDENT_ROWS`` incidents and ``MAX_ALERTS_PER_INCIDENT`` alerts each are shown."""
    if not incidents:
        body = ('<p class="empty ok-text">No incidents.</p>' if not alerts else
                '<p class="empty">No incident could be built from the alerts.</p>')
        return _section("incidents", "Incidents", body)
    by_id = {a.get("alert_id"): a for a in alerts if a.get("alert_id") is not None}
    blocks = []
    for inc in incidents[:MAX_INCIDENT_ROWS]:
        if not isinstance(inc, dict):
            continue
        rank = severity_rank(inc.get("severity"))
        sev = severity_name(inc.get("severity"))
        mine = sorted_alerts(by_id[i] for i in (inc.get("alert_ids") or ()) if i in by_id)
        sigs = Counter(clean((a.get("alert") or {}).get("signature_id")) for a in mine)
        sig_text = ", ".join(f"{k}" + (f" \u00d7{n}" if n > 1 else "") for k, n in sorted(sigs.items()))
        rows = "".join(_alert_row(a) for a in mine[:MAX_ALERTS_PER_INCIDENT])
        more = (f'<p class="muted">{len(mine) - MAX_ALERTS_PER_INCIDENT} more alerts of this incident not shown '
                f'(alerts.jsonl, incident_id {esc(inc.get("incident_id"), 40)}).</p>'
                if len(mine) > MAX_ALERTS_PER_INCIDENT else "")
        why = inc.get("why") if isinstance(inc.get("why"), list) else []
        steps = inc.get("next_steps") if isinstance(inc.get("next_steps"), list) else []
        why_html = "".join(f"<li>{esc(w, 400)}</li>" for w in why[:12])
        steps_html = "".join(f"<li><code>{esc(c, 300)}</code></li>" for c in steps[:6])
        ev = _evidence(inc.get("evidence"))
        blocks.append(
            f'<article class="incident" data-sev="{rank}" id="incident-{esc(inc.get("incident_id"), 40)}">'
            f'<div class="inc-head"><span class="sev sev-{sev}">{esc(sev)}</span> '
            f'<span class="inc-title">{esc(inc.get("title"), 400)}</span></div>'
            f'<div class="muted small">{_incident_figures(inc)} \u00b7 incident <code>'
            f'{esc(inc.get("incident_id"), 40)}</code></div>'
            f'<details><summary>Why, evidence and next steps</summary><ul class="why">{why_html}</ul>'
            f'<div class="ev-block">{ev}</div><ul class="steps">{steps_html}</ul></details>'
            f'<details><summary>{fmt_int(len(mine))} alert{"s" if len(mine) != 1 else ""} '
            f'({esc(sig_text, 200)})</summary><div class="tablewrap"><table class="data alerts sub">{_ALERT_HEAD}'
            f'<tbody>{rows}</tbody></table></div>{more}</details></article>')
    rest = len(incidents) - MAX_INCIDENT_ROWS
    tail = (f'<p class="muted">{fmt_int(rest)} more incidents not shown (see incidents.jsonl).</p>'
            if rest > 0 else "")
    return _section("incidents", "Incidents", "".join(blocks) + tail,
                    f"{fmt_int(len(incidents))} incidents from {fmt_int(len(alerts))} alerts: the same source host "
                    "sending to the same destination organisation through one channel is one incident. Most "
                    "severe first, then most records; each incident's alerts are folded underneath.")


def _dst_table(agg: Aggregates, items, table_id: str) -> str:
    rows = []
    for i, (name, r) in enumerate(items, 1):
        m = agg.dst.meta.get(name, {})
        addr = m.get("addr")
        sub = clean(addr) if addr and clean(addr) != clean(name) else ""
        cat = " / ".join(clean(x) for x in (m.get("category"), m.get("group")) if x)
        rows.append(
            f'<tr><td class="num muted" data-v="{i}">{i}</td>'
            f'<td><div class="dst">{esc(name, 120)}</div>{_muted(esc(sub))}</td>'
            f'<td>{esc(m.get("org"), 60)}</td><td>{esc(_cc(m.get("country")))}</td><td>{esc(cat, 60)}</td>'
            f'{_td_num(r[FLOWS])}{_td_num(r[BYTES], fmt_bytes(r[BYTES]))}{_td_num(r[BYTES_IN], fmt_bytes(r[BYTES_IN]))}'
            f'{_td_num(r[CUST])}{_td_num(r[SHIP])}'
            f'<td data-v="{esc(allowed_word(m.get("allowed", ())))}">{_badge(allowed_word(m.get("allowed", ())))}</td>'
            f'</tr>')
    if not rows:
        return '<p class="empty">No outbound traffic.</p>'
    return (f'<div class="tablewrap"><table class="sortable data" id="{table_id}"><thead><tr>'
            '<th data-sort="num">#</th><th data-sort="text">Destination</th><th data-sort="text">Organisation</th>'
            '<th data-sort="text">Country</th><th data-sort="text">Category / group</th><th data-sort="num">Conns</th>'
            '<th data-sort="num">Bytes out</th><th data-sort="num">Bytes in</th><th data-sort="num">Customer</th>'
            '<th data-sort="num">Shipment</th><th data-sort="text">Allow list</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _records_table(agg: Aggregates, top: int) -> str:
    items = [(k, r) for k, r in agg.dst.items.items() if r[CUST] or r[SHIP]]
    items.sort(key=lambda kv: (-(kv[1][CUST] + kv[1][SHIP]), str(kv[0])))
    items = items[:top]
    if not items:
        return '<p class="empty ok-text">No customer or shipment records seen leaving the site.</p>'
    rows = []
    for name, r in items:
        m = agg.dst.meta.get(name, {})
        aw = allowed_word(m.get("allowed", ()))
        sub = esc(m.get("org"), 60) + MIDDOT + esc(_cc(m.get("country")))
        rows.append(
            f'<tr><td><div class="dst">{esc(name, 120)}</div>{_muted(sub)}</td>{_td_num(r[CUST])}{_td_num(r[SHIP])}'
            f'<td>{_chips(m.get("data") or Counter(), 5)}</td><td>{_chips(m.get("payload") or Counter(), 3)}</td>'
            f'{_td_num(r[FLOWS])}{_td_num(r[BYTES], fmt_bytes(r[BYTES]))}'
            f'<td data-v="{esc(aw)}">{_badge(aw)}</td></tr>')
    return ('<div class="tablewrap"><table class="sortable data" id="records-table"><thead><tr>'
            '<th data-sort="text">Destination</th><th data-sort="num">Customer</th><th data-sort="num">Shipment</th>'
            '<th>Identifiers (distinct per connection)</th><th>Payload types</th><th data-sort="num">Conns</th>'
            '<th data-sort="num">Bytes out</th><th data-sort="text">Allow list</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _org_table(agg: Aggregates, top: int) -> str:
    rows = []
    for org, r in agg.top_orgs(top):
        m = agg.org.meta.get(org, {})
        kind = m.get("kind")
        tag = {"group": "destination group", "domain": "domain (no AS organisation)", "asn": "AS number",
               "address": "address (no name or AS)", "unknown": "no address"}.get(kind, "")
        ccs = ", ".join(_cc(c) for c, _ in (m.get("countries") or Counter()).most_common(4))
        dsts = sorted(clean(d) for d in m.get("dsts", ()))
        more = bool(m.get("dsts_more"))
        aw = allowed_word(m.get("allowed", ()))
        dtext = ", ".join(dsts[:4]) + (ELLIPSIS if len(dsts) > 4 or more else "")
        rows.append(
            f'<tr><td><div class="dst">{esc(org, 80)}</div>{_muted(esc(tag))}</td>'
            f'<td>{esc(ccs)}</td><td>{esc(m.get("category"))}</td>{_td_num(r[FLOWS])}'
            f'{_td_num(r[BYTES], fmt_bytes(r[BYTES]))}{_td_num(r[CUST])}{_td_num(r[SHIP])}'
            f'<td data-v="{esc(aw)}">{_badge(aw)}</td>'
            f'<td class="small">{esc(dtext, 240)}</td></tr>')
    if not rows:
        return ""
    return ('<div class="tablewrap"><table class="sortable data" id="orgs-table"><thead><tr>'
            '<th data-sort="text">Organisation</th><th data-sort="text">Countries</th>'
            '<th data-sort="text">Category</th>'
            '<th data-sort="num">Conns</th><th data-sort="num">Bytes out</th><th data-sort="num">Customer</th>'
            '<th data-sort="num">Shipment</th><th data-sort="text">Allow list</th><th>Destinations</th></tr></thead>'
            '<tbody>' + "".join(rows) + "</tbody></table></div>")


def _data_section(agg: Aggregates, cs: _ContentSummary) -> str:
    data = Counter(agg.data)
    if not data and cs.conns:  # flows without content fields: fall back to content.jsonl connection counts
        data = Counter(cs.conns)
    parts = []
    if data:
        rows = []
        for k, v in sorted(data.items(), key=lambda kv: (-kv[1], kv[0]))[:40]:
            samples = "".join(f"<code>{esc(s, 60)}</code>" for s in cs.samples.get(k, [])[:5])
            rows.append(f'<tr><td>{esc(k, 40)}</td>{_td_num(v)}{_td_num(cs.conns.get(k, 0)) if cs.records else ""}'
                        f'<td class="samples">{samples or _dash()}</td></tr>')
        chart = svg_hbars("chart-data", "Identifiers leaving, by class",
                          [(k, [(v, "neutral")], fmt_int(v), f"{clean(k)}: {fmt_int(v)} identifiers")
                           for k, v in sorted(data.items(), key=lambda kv: (-kv[1], kv[0]))[:12]],
                          width=560, label_w=140)
        parts.append(
            '<div class="split"><div class="tablewrap"><table class="sortable data" id="data-table"><thead><tr>'
            '<th data-sort="text">Class</th><th data-sort="num">Identifiers</th>'
            + ('<th data-sort="num">Connections</th>' if cs.records else "")
            + '<th>Masked samples</th></tr></thead><tbody>' + "".join(rows) + f'</tbody></table></div>'
            f'<div class="chartbox">{chart}</div></div>')
    else:
        parts.append('<p class="empty ok-text">No identifiers seen leaving the site.</p>')
    if cs.edi:
        parts.append('<h3>EDI messages</h3><p>' + _chips(cs.edi, 24) + "</p>")
    if cs.edm:
        parts.append('<h3>Exact data matches (fingerprinted records)</h3><p>' + _chips(cs.edm, 24) + "</p>")
    if cs.encodings:
        parts.append('<h3>Encoded payloads</h3><p>' + _chips(cs.encodings, 12) + "</p>")
    return "".join(parts)


def _kpi(label: str, value: str, sub: str = "", cls: str = "") -> str:
    return (f'<div class="kpi {cls}"><div class="kpi-l">{esc(label)}</div><div class="kpi-v">{esc(value)}</div>'
            f'<div class="kpi-s">{sub}</div></div>')


# --------------------------------------------------------------------------------------------
# The document

CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f1f5f9;--card:#fff;--accent:#0f766e;--ok:#0f766e;
--bad:#d97706;--mix:#7c3aed;--high:#dc2626;--medium:#d97706;--low:#0891b2;--info:#64748b}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;background:#f1f5f9;
border:1px solid var(--line);border-radius:4px;padding:0 4px;margin:0 3px 2px 0;display:inline-block;
overflow-wrap:break-word;max-width:100%}
td.evidence code,td.samples code{overflow-wrap:anywhere}
header.top{background:linear-gradient(120deg,#0f172a,#134e4a);color:#fff;padding:28px 32px 22px}
header.top h1{margin:0 0 4px;font-size:24px;font-weight:650;letter-spacing:-.01em}
header.top .meta{color:#cbd5e1;font-size:13px}
header.top .meta b{color:#fff;font-weight:600}
nav.toc{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;
display:flex;gap:4px 16px;flex-wrap:wrap;align-items:center;font-size:13px}
nav.toc a{color:var(--ink);text-decoration:none;padding:2px 0;border-bottom:2px solid transparent}
nav.toc a:hover{border-bottom-color:var(--accent)}
nav.toc button{margin-left:auto;font:inherit;border:1px solid var(--line);background:#fff;border-radius:6px;
padding:3px 10px;cursor:pointer}
main{max-width:1280px;margin:0 auto;padding:20px 24px 40px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:18px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;
border-top:3px solid #94a3b8}
.kpi.warn{border-top-color:var(--bad)}.kpi.alert{border-top-color:var(--high)}.kpi.good{border-top-color:var(--ok)}
.kpi-l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi-v{font-size:22px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums}
.kpi-s{color:var(--muted);font-size:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;margin:0 0 18px}
.card h2{margin:0 0 4px;font-size:17px;font-weight:650}
.card h3{margin:16px 0 6px;font-size:14px}
.lead{color:var(--muted);margin:0 0 12px;font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px}
.split{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:18px;align-items:start}
@media (max-width:1000px){.split{grid-template-columns:1fr}}
@media (max-width:560px){.grid2{grid-template-columns:1fr}header.top,nav.toc{padding-left:16px;padding-right:16px}
main{padding:12px}}
.chart{max-width:100%;height:auto;display:block}
.chart text{font-family:inherit;font-size:12px;fill:#334155}
.chart .val,.chart .sub{fill:var(--muted);font-size:11px;font-variant-numeric:tabular-nums}
.chart .axis{fill:var(--muted);font-size:11px}
.chart .track{fill:#f1f5f9}
.chart .grid{stroke:#e2e8f0;stroke-width:1}
.chart .axisline,.chart .tick{stroke:#94a3b8;stroke-width:1}
.chart g.row:hover .track{fill:#e2e8f0}
.chart g.tb:hover rect.bar{opacity:.75}
.sankey .band{fill-opacity:.38;transition:fill-opacity .15s}
.sankey .band:hover,.sankey.focus .band.hi{fill-opacity:.8}
.sankey.focus .band{fill-opacity:.1}
.sankey .node{cursor:default}
.sankey .node .lbl{font-weight:600;fill:var(--ink)}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:8px 0 0}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-2px;margin-right:5px}
.legend .ok{background:var(--ok)}.legend .bad{background:var(--bad)}.legend .mix{background:var(--mix)}
.legend .cust{background:#2563eb}.legend .ship{background:#db2777}
.tablewrap{overflow-x:auto}
.chartbox{margin:0 0 14px}
table.data{width:100%;border-collapse:collapse;font-size:13px}
table.data th{text-align:left;font-weight:600;color:#334155;background:#f8fafc;border-bottom:1px solid var(--line);
padding:7px 8px;white-space:nowrap;vertical-align:bottom}
table.data td{border-bottom:1px solid #f1f5f9;padding:6px 8px;vertical-align:top}
table.data tbody tr:hover{background:#f8fafc}
table.data td.num,table.data th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.sortable{cursor:pointer;user-select:none}
th.sortable::after{content:" \\2195";color:#cbd5e1;font-size:11px}
th[aria-sort=ascending]::after{content:" \\25B2";color:var(--accent)}
th[aria-sort=descending]::after{content:" \\25BC";color:var(--accent)}
.nowrap{white-space:nowrap}
.muted{color:var(--muted)}.small{font-size:12px}
.dst{font-weight:600;overflow-wrap:anywhere;min-width:12em}
table.alerts .dst{min-width:15em}
.sig{font-weight:600}
.empty{color:var(--muted);font-style:italic}.ok-text{color:var(--ok)}
.badge{display:inline-block;font-size:11px;font-weight:600;padding:1px 8px;border-radius:999px;white-space:nowrap}
.badge.ok{background:#ccfbf1;color:#115e59}.badge.bad{background:#fef3c7;color:#92400e}
.badge.mix{background:#ede9fe;color:#5b21b6}.badge.neutral{background:#f1f5f9;color:#475569}
.sev{display:inline-block;min-width:58px;text-align:center;font-size:11px;font-weight:700;text-transform:uppercase;
letter-spacing:.04em;padding:2px 8px;border-radius:4px;color:#fff}
.sev-critical{background:#7f1d1d}.sev-high{background:var(--high)}.sev-medium{background:var(--medium)}.sev-low{background:var(--low)}
.sev-info{background:var(--info)}
.chip{display:inline-block;background:#f1f5f9;border:1px solid var(--line);border-radius:999px;font-size:11px;
padding:0 8px;margin:0 4px 3px 0;white-space:nowrap}
.chip b{font-weight:650}.chip.more{color:var(--muted)}
.controls{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:center;margin:0 0 10px}
.controls input[type=search]{flex:1 1 280px;font:inherit;padding:7px 10px;border:1px solid #cbd5e1;border-radius:8px}
.controls input[type=search]:focus{outline:2px solid #99f6e4;border-color:var(--accent)}
.sevtoggle{font-size:12px;border:1px solid var(--line);border-radius:999px;padding:3px 10px;cursor:pointer;
user-select:none}
.sevtoggle.sev-critical{background:#fecaca;color:#7f1d1d}.sevtoggle.sev-high{background:#fee2e2;color:#991b1b}.sevtoggle.sev-medium{background:#fef3c7;color:#92400e}
.sevtoggle.sev-low{background:#cffafe;color:#155e75}.sevtoggle.sev-info{background:#f1f5f9;color:#334155}
.count{color:var(--muted);font-size:12px;margin-left:auto}
.ev{margin:0 0 2px}.ev-k{font-size:11px;color:var(--muted);margin-right:4px}
td.evidence{min-width:240px}
td.evidence .chips{margin:0 0 4px}
details summary{cursor:pointer;color:var(--accent);font-size:12px}
article.incident{border:1px solid var(--line);border-left:4px solid var(--info);border-radius:8px;padding:10px 12px;
margin:0 0 10px}
article.incident[data-sev="1"]{border-left-color:#7f1d1d}
article.incident[data-sev="2"]{border-left-color:var(--high)}
article.incident[data-sev="3"]{border-left-color:var(--medium)}
article.incident[data-sev="4"]{border-left-color:var(--low)}
.inc-head{margin:0 0 4px}.inc-title{font-weight:600}
article.incident details{margin:6px 0 0}
ul.why,ul.steps{margin:6px 0;padding-left:20px;font-size:13px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
@media print{
body{background:#fff;font-size:11px}
nav.toc,.controls{display:none}
header.top{background:#fff;color:#000;padding:0 0 8px;border-bottom:2px solid #000}
header.top .meta,header.top .meta b{color:#000}
main{max-width:none;padding:8px 0}
.card{border:none;border-top:1px solid #cbd5e1;border-radius:0;padding:10px 0;break-inside:avoid-page}
.kpi{break-inside:avoid}
tr{break-inside:avoid}
details>*{display:block}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
a{color:inherit;text-decoration:none}
}
"""

JS = """
(function () {
  "use strict";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };
  function cellValue(row, idx, numeric) {
    var c = row.cells[idx];
    if (!c) { return numeric ? -Infinity : ""; }
    var v = c.getAttribute("data-v");
    if (numeric) {
      var n = parseFloat(v !== null ? v : c.textContent.replace(/[^0-9.\\-]/g, ""));
      return isNaN(n) ? -Infinity : n;
    }
    return (v !== null ? v : c.textContent).trim().toLowerCase();
  }
  function sortable(table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, idx) {
      var kind = th.getAttribute("data-sort");
      if (!kind) { return; }
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.setAttribute("title", "Sort");
      var go = function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        each(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var num = kind === "num", sign = dir === "ascending" ? 1 : -1;
        rows.sort(function (a, b) {
          var x = cellValue(a, idx, num), y = cellValue(b, idx, num);
          return (x < y ? -1 : x > y ? 1 : 0) * sign;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); go(); }
      });
    });
  }
  each(document.querySelectorAll("table.sortable"), sortable);

  var table = document.getElementById("alerts-table");
  var filter = document.getElementById("alert-filter");
  var count = document.getElementById("alert-count");
  var toggles = document.querySelectorAll("input[data-sev-toggle]");
  function applyFilter() {
    if (!table) { return; }
    var q = filter ? filter.value.trim().toLowerCase() : "";
    var on = {};
    each(toggles, function (b) { on[b.getAttribute("data-sev-toggle")] = b.checked; });
    var rows = table.tBodies[0].rows, shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = on[r.getAttribute("data-sev")] !== false &&
        (!q || r.textContent.toLowerCase().indexOf(q) !== -1);
      r.hidden = !ok;
      if (ok) { shown++; }
    }
    if (count) { count.textContent = shown + " of " + rows.length + " alerts"; }
    document.body.setAttribute("data-alerts-shown", String(shown));
  }
  if (filter) { filter.addEventListener("input", applyFilter); }
  each(toggles, function (b) { b.addEventListener("change", applyFilter); });
  applyFilter();

  each(document.querySelectorAll("svg.sankey"), function (svg) {
    each(svg.querySelectorAll(".node"), function (node) {
      var id = node.getAttribute("data-node"), side = id.charAt(0) === "l" ? "data-l" : "data-r";
      node.addEventListener("mouseenter", function () {
        svg.classList.add("focus");
        each(svg.querySelectorAll(".band[" + side + "='" + id + "']"), function (b) { b.classList.add("hi"); });
      });
      node.addEventListener("mouseleave", function () {
        svg.classList.remove("focus");
        each(svg.querySelectorAll(".band.hi"), function (b) { b.classList.remove("hi"); });
      });
    });
  });

  var printButton = document.getElementById("print-button");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }
  document.body.setAttribute("data-report-ready", "1");
}());
"""


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render_report(agg: Aggregates, alerts: list, stats: dict, site_name: str, content=None,
                  title: Optional[str] = None, top: int = 20, incidents: Optional[list] = None) -> str:
    """The report as one HTML string (leading with ``incidents`` when given)."""
    alerts = [a for a in (alerts or []) if isinstance(a, dict)]
    if incidents is not None:
        incidents = [i for i in incidents if isinstance(i, dict)]
    cs = _ContentSummary(content)
    site = clean(site_name) or "site"
    title = clean(title) if title else f"Outbound traffic report \u2014 site {site}"
    counts = alert_counts(alerts)

    # header and key figures
    files = stats.get("files") or []
    if agg.first_ts is not None:
        period = (f"<b>{esc(fmt_ts(agg.first_ts))}</b> \u2192 <b>{esc(fmt_ts(agg.last_ts))}</b> UTC "
                  f"({esc(fmt_duration((agg.last_ts or agg.first_ts) - agg.first_ts))})")
    else:
        period = "no timestamps"
    meta = (f'Site <b>{esc(site)}</b> \u00b7 capture {period} \u00b7 <b>{esc(fmt_int(stats.get("packets_read")))}'
            f'</b> packets \u00b7 <b>{esc(fmt_int(stats.get("flows", agg.flows)))}</b> flows'
            + (f" \u00b7 {len(files)} capture file{'s' if len(files) != 1 else ''}" if files else ""))
    dirs = " \u00b7 ".join(f"{esc(fmt_int(v))} {esc(k)}" for k, v in sorted(agg.directions.items(),
                                                                             key=lambda kv: -kv[1]))
    other_pct = 100.0 * agg.out_other_bytes / agg.out_bytes if agg.out_bytes else 0.0
    alert_sub = " \u00b7 ".join(f'{counts[r]} {severity_name(r)}' for r in (1, 2, 3, 4, 5)
                                if counts.get(r)) or "none"
    kpis = "".join([
        _kpi("Packets", fmt_int(stats.get("packets_read")),
             esc(f"{fmt_bytes(stats.get('bytes_read'))} read")),
        _kpi("Connections", fmt_int(agg.flows), dirs),
        _kpi("Leaving the site", fmt_bytes(agg.out_bytes),
             esc(f"{fmt_int(agg.out_flows)} connections \u00b7 {fmt_bytes(agg.out_bytes_in)} back")),
        _kpi("Not on the allow list", fmt_bytes(agg.out_other_bytes), esc(f"{other_pct:.1f} % of bytes leaving"),
             "warn" if agg.out_other_bytes else "good"),
        _kpi("Records leaving", fmt_int(agg.out_customer + agg.out_shipment),
             esc(f"{fmt_int(agg.out_customer)} customer \u00b7 {fmt_int(agg.out_shipment)} shipment"),
             "warn" if agg.out_customer or agg.out_shipment else "good"),
        _kpi("Destinations", fmt_int(len(agg.dst)),
             esc(f"{len(agg.org)} organisations \u00b7 {len([c for c in agg.country.items if c != '??'])} countries")),
        _kpi("Incidents", fmt_int(len(incidents)), esc(f"from {fmt_int(len(alerts))} alerts \u00b7 {alert_sub}"),
             "alert" if counts.get(1) else ("warn" if incidents else "good")) if incidents is not None else
        _kpi("Alerts", fmt_int(len(alerts)), esc(alert_sub), "alert" if counts.get(1) else
             ("warn" if alerts else "good")),
    ])

    legend_allow = ('<div class="legend"><span><i class="ok"></i>allowed destinations</span>'
                    '<span><i class="bad"></i>not on the allow list</span><span><i class="mix"></i>partly allowed'
                    '</span></div>')
    sections = [f'<div class="kpis" id="overview">{kpis}</div>']
    if incidents is not None:
        sections.append(_incidents_section(incidents, alerts))
    sections.append(_alerts_section(alerts, collapsed=incidents is not None and bool(alerts)))

    sections.append(_section(
        "flowmap", "Who sends what where",
        svg_sankey(agg) + legend_allow,
        "Bytes leaving the site from local hosts (by role where the site file names one) to destination "
        "organisations; band width is proportional to bytes. Hover a node to follow its bands."))

    by_bytes = agg.top_destinations(top)
    chart_b = svg_hbars("chart-dst-bytes", "Top destinations by bytes out",
                        [(k, [(r[BYTES], _allow_cls(agg.dst.meta.get(k, {}).get("allowed", ())))], fmt_bytes(r[BYTES]),
                          f"{clean(k)}: {fmt_bytes(r[BYTES])} out in {fmt_int(r[FLOWS])} connections")
                         for k, r in by_bytes[:12]])
    sections.append(_section(
        "destinations", "Top destinations by bytes out",
        f'<div class="chartbox">{chart_b}{legend_allow}</div>{_dst_table(agg, by_bytes, "dst-bytes-table")}',
        "Destination name from TLS/QUIC SNI, HTTP Host or the capture's own DNS answers; the address when "
        "there is none."))

    rec_items = [(k, r) for k, r in agg.dst.items.items() if r[CUST] or r[SHIP]]
    rec_items.sort(key=lambda kv: (-(kv[1][CUST] + kv[1][SHIP]), str(kv[0])))
    chart_r = svg_hbars("chart-dst-records", "Top destinations by records",
                        [(k, [(r[CUST], "cust"), (r[SHIP], "ship")], f"{fmt_int(r[CUST])} / {fmt_int(r[SHIP])}",
                          f"{clean(k)}: {fmt_int(r[CUST])} customer, {fmt_int(r[SHIP])} shipment records")
                         for k, r in rec_items[:12]]) if rec_items else ""
    legend_rec = ('<div class="legend"><span><i class="cust"></i>customer records</span>'
                  '<span><i class="ship"></i>shipment records</span></div>') if rec_items else ""
    sections.append(_section(
        "records", "Records leaving, by destination",
        f'<div class="chartbox">{chart_r}{legend_rec}</div>{_records_table(agg, top)}',
        "Customer and shipment records found in what the local side sent (CSV rows, JSON objects, XML "
        "elements, EDI messages)."))

    orgs = agg.top_orgs(12)
    chart_o = svg_hbars("chart-orgs", "Bytes out by destination organisation",
                        [(k, [(r[BYTES], _allow_cls(agg.org.meta.get(k, {}).get("allowed", ())))], fmt_bytes(r[BYTES]),
                          f"{clean(k)}: {fmt_bytes(r[BYTES])}") for k, r in orgs], width=620, label_w=230)
    countries = agg.top_countries(12)
    chart_c = svg_hbars("chart-countries", "Bytes out by destination country",
                        [(_cc(k), [(r[BYTES], "neutral")], fmt_bytes(r[BYTES]),
                          f"{_cc(k)}: {fmt_bytes(r[BYTES])} in {fmt_int(r[FLOWS])} connections, "
                          f"{fmt_int(r[CUST])} customer / {fmt_int(r[SHIP])} shipment records")
                         for k, r in countries], width=620, label_w=110)
    cats = agg.category.top(BYTES, 10, min_value=None)
    chart_k = svg_hbars("chart-categories", "Bytes out by destination category",
                        [(k, [(r[BYTES], "neutral")], fmt_bytes(r[BYTES]), f"{clean(k)}: {fmt_bytes(r[BYTES])}")
                         for k, r in cats], width=620, label_w=150)
    sections.append(_section(
        "orgs", "Organisations and countries",
        f'<div class="grid2"><div><h3>By organisation</h3>{chart_o}</div><div><h3>By country</h3>{chart_c}'
        f'<h3>By destination category</h3>{chart_k}</div></div><h3>Organisations</h3>{_org_table(agg, top)}',
        "Organisation from the AS data; where there is none, the destination group from the signatures, "
        "else the registered domain of the name. Country from the offline GeoIP data."))

    sections.append(_section(
        "timeline", "Outbound volume over time",
        svg_timeline(agg) + '<div class="legend"><span><i class="ok"></i>to allowed destinations</span>'
        '<span><i class="bad"></i>to destinations not on the allow list</span></div>',
        "Bytes leaving the site per time bucket, spread over each connection's duration."))

    pay = agg.payload.top(BYTES, 12, min_value=None)
    chart_p = svg_hbars("chart-payload", "Bytes out by payload type",
                        [(k, [(r[BYTES], "neutral")], f"{fmt_bytes(r[BYTES])} \u00b7 {fmt_int(r[FLOWS])}",
                          f"{clean(k)}: {fmt_bytes(r[BYTES])} in {fmt_int(r[FLOWS])} connections")
                         for k, r in pay], width=560, label_w=130)
    prow = "".join(f'<tr><td>{esc(k, 40)}</td>{_td_num(r[FLOWS])}{_td_num(r[BYTES], fmt_bytes(r[BYTES]))}'
                   f'{_td_num(r[CUST])}{_td_num(r[SHIP])}</tr>' for k, r in agg.payload.top(FLOWS, 30, min_value=None))
    ptable = ('<div class="tablewrap"><table class="sortable data" id="payload-table"><thead><tr>'
              '<th data-sort="text">Payload type</th><th data-sort="num">Conns</th><th data-sort="num">Bytes out</th>'
              '<th data-sort="num">Customer</th><th data-sort="num">Shipment</th></tr></thead><tbody>'
              f'{prow}</tbody></table></div>') if prow else '<p class="empty">No outbound payload.</p>'
    sections.append(_section(
        "payload", "Payload types and data",
        f'<div class="split">{ptable}<div class="chartbox">{chart_p}</div></div><h3>Identifiers leaving</h3>'
        + _data_section(agg, cs),
        "What kind of data left: the payload type of each connection (by magic bytes, structure and "
        "entropy) and the identifiers found in it, masked."))

    hrows = []
    for h, r in agg.top_hosts(top):
        role = (agg.host.meta.get(h) or {}).get("role")
        hrows.append(f'<tr><td><code>{esc(h)}</code></td><td>{esc(role) or _dash()}</td>'
                     f'{_td_num(r[FLOWS])}{_td_num(r[BYTES], fmt_bytes(r[BYTES]))}{_td_num(r[CUST])}'
                     f'{_td_num(r[SHIP])}</tr>')
    htable = ('<div class="tablewrap"><table class="sortable data" id="hosts-table"><thead><tr>'
              '<th data-sort="text">Local host</th><th data-sort="text">Role</th><th data-sort="num">Conns</th>'
              '<th data-sort="num">Bytes out</th><th data-sort="num">Customer</th><th data-sort="num">Shipment</th>'
              f'</tr></thead><tbody>{"".join(hrows)}</tbody></table></div>') if hrows else \
        '<p class="empty">No outbound traffic.</p>'
    sections.append(_section("hosts", "Local hosts sending data out", htable))

    sections.append(_section("inputs", "Inputs and notes", _inputs(stats, agg)))

    nav = "".join(f'<a href="#{i}">{esc(t)}</a>' for i, t in (
        ("overview", "Overview"),
        *((("incidents", f"Incidents ({len(incidents)})"),) if incidents is not None else ()),
        ("alerts", f"Alerts ({len(alerts)})"), ("flowmap", "Flow map"),
        ("destinations", "Destinations"), ("records", "Records"), ("orgs", "Organisations"),
        ("timeline", "Timeline"), ("payload", "Data"), ("hosts", "Hosts"), ("inputs", "Inputs")))
    css = CSS
    js = JS
    csp = (f"default-src 'none'; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta name="generator" content="inspector {esc(__version__)}">'
        '<link rel="icon" href="data:,">'
        f'<title>{esc(title)}</title><style>{css}</style></head>\n<body>'
        f'<header class="top"><h1>{esc(title)}</h1><div class="meta">{meta}</div></header>'
        f'<nav class="toc" aria-label="Sections">{nav}<button type="button" id="print-button">Print</button></nav>'
        f'<main>{"".join(sections)}</main>'
        f'<footer>inspector {esc(__version__)} \u00b7 self-contained report: no network access, no external '
        f'resources</footer><script>{js}</script></body></html>\n')


def _inputs(stats: dict, agg: Aggregates) -> str:
    parts = []
    files = stats.get("files") or []
    if files:
        rows = "".join(f'<tr><td><code>{esc(f.get("path"), 160)}</code></td><td>{esc(f.get("format"))}</td>'
                       f'{_td_num(_num(f.get("packets_read")))}'
                       f'{_td_num(_num(f.get("bytes_read")), fmt_bytes(f.get("bytes_read")))}</tr>'
                       for f in files[:200] if isinstance(f, dict))
        parts.append('<div class="tablewrap"><table class="sortable data" id="files-table"><thead><tr>'
                     '<th data-sort="text">Capture</th><th data-sort="text">Format</th><th data-sort="num">Packets</th>'
                     f'<th data-sort="num">Bytes</th></tr></thead><tbody>{rows}</tbody></table></div>')
        if len(files) > 200:
            parts.append(f'<p class="muted">{len(files) - 200} more files (stats.json).</p>')
    failed = stats.get("inputs_failed") or []
    if failed:
        parts.append("<h3>Inputs not read</h3><ul>" + "".join(f"<li><code>{esc(x, 300)}</code></li>"
                                                              for x in failed[:50]) + "</ul>")
    outcomes = stats.get("outcomes") or {}
    if outcomes:
        parts.append("<h3>Packet outcomes</h3><p>" + _chips(Counter({k: _num(v) for k, v in outcomes.items()}), 20)
                     + "</p>")
    weirds = stats.get("weirds") or {}
    if weirds:
        parts.append("<h3>Weird events</h3><p>" + _chips(Counter({k: _num(v) for k, v in weirds.items()}), 20)
                     + "</p>")
    notes = [
        "Bytes leaving are what the local side sent: the originator's bytes of outbound connections and the "
        "responder's bytes of inbound ones (e.g. active-mode FTP uploads). Internal and external connections "
        "are counted in the connection total only.",
        "Record and identifier counts are distinct values per connection, summed over connections.",
        "Every value seen on the network is shown as text, never interpreted. Identifiers appear as in "
        "content.jsonl and alerts.jsonl: masked unless the scan ran with --show-raw.",
    ]
    if stats.get("flows_evicted"):
        notes.append(f"{fmt_int(stats.get('flows_evicted'))} connections were evicted from the full flow table "
                     f"and reported early.")
    if agg.truncated:
        notes.append("Very many distinct destinations: the per-destination tables keep the largest; totals are "
                     "exact, the smallest entries are approximate.")
    parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)
