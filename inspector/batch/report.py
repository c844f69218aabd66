"""``inspector report``: the nightly report of a batch database, one self-contained HTML page.

No scripts, fonts, images or styles from elsewhere: tables and inline SVG
(bar sparklines of each host's and destination's volumes over the last
nights, the night's trend charts), so the page can be mailed or archived and
opened offline.  Every string from the database (host names, destination
names, signatures) comes from the network or from files and is escaped, with
control and bidirectional-override characters made visible.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from collections import defaultdict

from ..timeutil import format_ts
from ..report.format import esc, fmt_bytes, fmt_int
from ..severity import severity_name

def _median(values):
    v = sorted(values)
    if not v:
        return None
    m = len(v) // 2
    return float(v[m]) if len(v) % 2 else (v[m - 1] + v[m]) / 2.0


# ----------------------------------------------------------------------------------------------
# inline SVG
# ----------------------------------------------------------------------------------------------

def spark_bars(values: list, labels: list, fmt=fmt_int, width: int = 140, height: int = 28,
               highlight_last: bool = True) -> str:
    """A bar sparkline: one bar per night, the last (tonight) highlighted; hover titles give the values."""
    n = len(values)
    if n == 0:
        return ""
    top = max(max(values), 1)
    gap = 1
    bw = max((width - gap * (n - 1)) / n, 1.0)
    parts = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="trend over {n} nights">',
             f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="axis"/>']
    for i, (v, lab) in enumerate(zip(values, labels)):
        h = 0 if not v else max(1.5, (height - 2) * v / top)
        x = i * (bw + gap)
        cls = "bar now" if (highlight_last and i == n - 1) else "bar"
        parts.append(f'<rect x="{x:.1f}" y="{height - 1 - h:.1f}" width="{bw:.1f}" height="{h:.1f}" class="{cls}">'
                     f'<title>{esc(lab)}: {esc(fmt(v))}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(values: list, labels: list, title: str, fmt=fmt_int, width: int = 560, height: int = 150) -> str:
    """A labelled bar chart of one value per night (tonight highlighted) with the earlier nights' median."""
    n = len(values)
    if n == 0:
        return ""
    left, bottom, topm = 70, 22, 18
    pw, ph = width - left - 8, height - bottom - topm
    top = max(max(values), 1)
    bw = pw / n
    med = _median(values[:-1]) if n > 1 else None
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{esc(title)}">',
             f'<text x="{left}" y="12" class="ctitle">{esc(title)}</text>',
             f'<text x="{left - 4}" y="{topm + 8}" class="tick" text-anchor="end">{esc(fmt(top))}</text>',
             f'<text x="{left - 4}" y="{topm + ph}" class="tick" text-anchor="end">0</text>',
             f'<line x1="{left}" y1="{topm + ph + 0.5}" x2="{left + pw}" y2="{topm + ph + 0.5}" class="axis"/>']
    for i, (v, lab) in enumerate(zip(values, labels)):
        h = 0 if not v else max(1.5, ph * v / top)
        x = left + i * bw + 1
        cls = "bar now" if i == n - 1 else "bar"
        parts.append(f'<rect x="{x:.1f}" y="{topm + ph - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                     f'class="{cls}"><title>{esc(lab)}: {esc(fmt(v))}</title></rect>')
        if n <= 16 or i % max(n // 8, 1) == 0 or i == n - 1:
            parts.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{height - 6}" class="tick" text-anchor="middle">'
                         f'{esc(lab[5:])}</text>')
    if med is not None and med > 0:
        y = topm + ph - ph * med / top
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="median">'
                     f'<title>median of the earlier nights: {esc(fmt(med))}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def hbars(rows: list, fmt=fmt_bytes, width: int = 560, bar_h: int = 16) -> str:
    """Horizontal bars: ``rows`` = [(label, value)], largest first."""
    if not rows:
        return '<p class="muted">nothing</p>'
    label_w = 190
    pw = width - label_w - 90
    top = max(max(v for _, v in rows), 1)
    height = len(rows) * (bar_h + 4) + 4
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (lab, v) in enumerate(rows):
        y = 2 + i * (bar_h + 4)
        w = 0 if not v else max(1.5, pw * v / top)
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 4}" class="lab" text-anchor="end">{esc(lab, 30)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" class="bar now">'
                     f'<title>{esc(lab)}: {esc(fmt(v))}</title></rect>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 4}" class="tick">{esc(fmt(v))}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------

def night_data(store, night: _dt.date | None, nights: int = 14, by: str = "host") -> dict:
    """Everything the report shows, from the database (read-only queries)."""
    con = store.con
    span = con.execute("SELECT min(night), max(night) FROM daily").fetchone()
    if night is None:
        night = span[1] or con.execute("SELECT max(night) FROM alerts").fetchone()[0]
        if night is None:
            raise ValueError(f"{store.db_path}: no nights in the database")
    has = con.execute("SELECT (SELECT count(*) FROM daily WHERE night = ?) + (SELECT count(*) FROM alerts "
                      "WHERE night = ?)", [night, night]).fetchone()[0]
    if not has:
        rng = f"{span[0]}..{span[1]}" if span[0] else "none"
        raise ValueError(f"no data for night {night} (nights in the database: {rng})")
    start = night - _dt.timedelta(days=nights - 1)
    days = [start + _dt.timedelta(days=i) for i in range(nights)]
    labels = [d.isoformat() for d in days]
    idx = {d: i for i, d in enumerate(days)}
    ent = "host" if by == "host" else "role"
    ext = "direction IN ('outbound', 'inbound')"

    ent_series = defaultdict(lambda: {"bytes": [0] * nights, "records": [0] * nights, "flows": [0] * nights,
                                      "all_flows": 0})
    for d, e, b, r, f in con.execute(f"""
            SELECT night, {ent}, sum(bytes_out), sum(records_customer + records_shipment), sum(flows)
            FROM daily WHERE night BETWEEN ? AND ? AND {ext} GROUP BY ALL""", [start, night]).fetchall():
        s = ent_series[e or "(none)"]
        s["bytes"][idx[d]] = b or 0
        s["records"][idx[d]] = r or 0
        s["flows"][idx[d]] = f or 0
    for e, f in con.execute(f"SELECT {ent}, sum(flows) FROM daily WHERE night = ? GROUP BY ALL", [night]).fetchall():
        ent_series[e or "(none)"]["all_flows"] = f or 0

    dest_series = defaultdict(lambda: {"bytes": [0] * nights, "records": [0] * nights, "flows": [0] * nights,
                                       "hosts": set()})
    for d, org, cc, b, r, f in con.execute(f"""
            SELECT night, dst_org, dst_country, sum(bytes_out), sum(records_customer + records_shipment), sum(flows)
            FROM daily WHERE night BETWEEN ? AND ? AND {ext} GROUP BY ALL""", [start, night]).fetchall():
        s = dest_series[(org, cc)]
        s["bytes"][idx[d]] = b or 0
        s["records"][idx[d]] = r or 0
        s["flows"][idx[d]] = f or 0
    for org, cc, e in con.execute(f"SELECT DISTINCT dst_org, dst_country, {ent} FROM daily WHERE night = ? "
                                  f"AND {ext}", [night]).fetchall():
        dest_series[(org, cc)]["hosts"].add(e or "(none)")
    first = {(o, c): n for o, c, n in con.execute(
        "SELECT dst_org, dst_country, min(night) FROM daily WHERE direction = 'outbound' GROUP BY ALL").fetchall()}

    totals = {"bytes": [0] * nights, "records": [0] * nights, "flows": [0] * nights, "alerts": [0] * nights}
    for d, b, r in con.execute(f"""SELECT night, sum(bytes_out), sum(records_customer + records_shipment)
            FROM daily WHERE night BETWEEN ? AND ? AND {ext} GROUP BY night""", [start, night]).fetchall():
        totals["bytes"][idx[d]] = b or 0
        totals["records"][idx[d]] = r or 0
    for d, f in con.execute("SELECT night, sum(flows) FROM daily WHERE night BETWEEN ? AND ? GROUP BY night",
                            [start, night]).fetchall():
        totals["flows"][idx[d]] = f or 0
    for d, a in con.execute("SELECT night, count(*) FROM alerts WHERE night BETWEEN ? AND ? GROUP BY night",
                            [start, night]).fetchall():
        totals["alerts"][idx[d]] = a
    rc = con.execute("SELECT sum(records_customer), sum(records_shipment) FROM daily WHERE night = ?",
                     [night]).fetchone()

    alerts = []
    for row in con.execute("""SELECT source, signature_id, signature, category, severity, ts, host, role, src_ip,
            dest_ip, dst_org, dst_country, eve, incident_id, alert_id FROM alerts WHERE night = ?
            ORDER BY severity NULLS LAST, ts NULLS LAST, alert_id""", [night]).fetchall():
        keys = ("source", "sid", "signature", "category", "severity", "ts", "host", "role", "src_ip", "dest_ip",
                "dst_org", "dst_country", "eve", "incident_id", "alert_id")
        a = dict(zip(keys, row))
        try:
            a["eve"] = json.loads(a["eve"]) if a["eve"] else {}
        except ValueError:
            a["eve"] = {}
        alerts.append(a)
    incidents = []
    for (rec,) in con.execute("""SELECT record FROM incidents WHERE night = ?
            ORDER BY severity, records_customer + records_shipment DESC, first_ts NULLS LAST, incident_id""",
                              [night]).fetchall():
        try:
            incidents.append(json.loads(rec))
        except ValueError:
            continue
    alerts_by_ent = defaultdict(int)
    for a in alerts:
        alerts_by_ent[(a["host"] if by == "host" else a["role"]) or "(none)"] += 1

    captures = con.execute("""SELECT host, rel, sha256, flows, alerts, packets, bytes FROM captures
            WHERE sha256 IN (SELECT DISTINCT capture_sha256 FROM flows WHERE night = ?) ORDER BY host, rel""",
                           [night]).fetchall()
    return {"night": night, "days": days, "labels": labels, "by": by, "entities": dict(ent_series),
            "dests": dict(dest_series), "first": first, "totals": totals, "alerts": alerts, "incidents": incidents,
            "alerts_by_entity": dict(alerts_by_ent), "captures": captures,
            "records": (rc[0] or 0, rc[1] or 0), "tz": store.meta("tz") or "UTC",
            "db": os.path.basename(store.db_path), "span": span}


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.muted{color:#667} table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #eef;text-align:left;vertical-align:middle}
th{background:#f4f6fa;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:12px} .card{border:1px solid #dde;border-radius:6px;padding:8px 12px;min-width:150px}
.card .v{font-size:20px;font-weight:600} .card .d{font-size:12px;color:#667}
.up{color:#b3261e;font-weight:600} .new{background:#fde7c8;border-radius:3px;padding:0 4px;font-size:11px}
.sev1{background:#7a1010;color:#fff} .sev2{background:#b3261e;color:#fff} .sev3{background:#e8a317;color:#000}
.sev4{background:#4a7ab8;color:#fff}
.sev{border-radius:3px;padding:1px 6px;font-size:11px;font-weight:600}
svg .bar{fill:#9fb3d1} svg .bar.now{fill:#2f5d9e} svg .axis{stroke:#99a} svg .median{stroke:#b3261e;stroke-dasharray:4 3}
svg .tick,svg .lab{font-size:10px;fill:#556} svg .ctitle{font-size:12px;font-weight:600;fill:#1d2330}
code{font-size:12px} .charts{display:flex;flex-wrap:wrap;gap:16px}
"""


def _ratio(value, history) -> tuple:
    """(median of the earlier nights with traffic, html of value / median)."""
    earlier = [v for v in history if v]
    med = _median(earlier)
    if not med:
        return med, '<span class="muted">-</span>' if not value else '<span class="new">new</span>'
    r = value / med
    cls = ' class="up"' if r >= 3 else ""
    return med, f"<span{cls}>\u00d7{r:.1f}</span>"


def _alert_detail(a: dict) -> str:
    eve = a["eve"]
    ev = eve.get("evidence") if isinstance(eve.get("evidence"), dict) else {}
    b = ev.get("baseline") or {}
    rec = eve.get("records") or {}
    bits = []
    if b.get("metric") in ("bytes_out", "records"):
        f = fmt_bytes if b["metric"] == "bytes_out" else fmt_int
        bits.append(f"{esc(b['metric'])} {esc(f(b.get('value')))} &gt; {esc(f(b.get('threshold')))} "
                    f"(median {esc(f(b.get('median')))}, MAD {esc(f(b.get('mad')))}, k {esc(b.get('k'))}, "
                    f"{esc(b.get('nights'))} nights)")
    elif str(b.get("metric", "")).startswith("first_seen"):
        bits.append(f"not seen on the {esc(b.get('nights'))} earlier nights since {esc(b.get('first_night'))}")
    if isinstance(rec, dict) and (rec.get("customer") or rec.get("shipment")):
        bits.append(f"records: customer {esc(fmt_int(rec.get('customer')))}, shipment "
                    f"{esc(fmt_int(rec.get('shipment')))}")
    if eve.get("bytes_out") is not None and b.get("metric") != "bytes_out":
        bits.append(f"sent {esc(fmt_bytes(eve.get('bytes_out')))}")
    dest = eve.get("destination") or {}
    if isinstance(dest, dict) and dest.get("name"):
        bits.append(f"to {esc(dest.get('name'), 60)}")
    return "; ".join(bits)


#: alerts listed under one incident, and in the table of alerts outside incidents (the page stays bounded)
MAX_ALERT_ROWS = 50


def _incident_mix(incidents: list) -> str:
    sev = defaultdict(int)
    for i in incidents:
        sev[i.get("severity")] += 1
    return ", ".join(f"{n} {severity_name(s)}" for s, n in sorted(sev.items(), key=lambda kv: (kv[0] is None, kv[0])))


def _alert_rows(w, alerts: list, by: str) -> None:
    w("<table><tr><th>time (UTC)</th><th>severity</th><th>signature</th><th>"
      f"{'host' if by == 'host' else 'host / role'}</th><th>source</th><th>destination</th><th>detail</th></tr>")
    for a in alerts[:MAX_ALERT_ROWS]:
        t = format_ts(a["ts"], "%H:%M:%S") if a["ts"] is not None else ""
        s = a["severity"]
        dest = " ".join(x for x in (esc(a["dst_org"], 40), f"({esc(a['dst_country'])})" if a["dst_country"]
                                    else "", esc(a["dest_ip"])) if x)
        who = esc(a["host"] or "") + (f" / {esc(a['role'])}" if a.get("role") else "")
        w(f"<tr><td>{t}</td><td><span class=\"sev sev{s}\">{esc(severity_name(s))}</span></td>"
          f"<td>{esc(a['signature'], 90)} <span class=\"muted\">[{esc(a['sid'])}, {esc(a['source'])}]</span></td>"
          f"<td>{who}</td><td>{esc(a['src_ip']) or '-'}</td><td>{dest}</td><td>{_alert_detail(a)}</td></tr>")
    w("</table>")
    if len(alerts) > MAX_ALERT_ROWS:
        w(f"<p class=\"muted\">{len(alerts) - MAX_ALERT_ROWS} more alerts not shown (the database's alerts "
          "table has them all).</p>")


def _incidents_section(w, data: dict, by: str) -> None:
    """One row per incident, most severe and largest first; each opens onto its facts, the commands that
    take the investigation further and its alerts."""
    incidents = data["incidents"]
    by_incident = defaultdict(list)
    for a in data["alerts"]:
        by_incident[a.get("incident_id")].append(a)
    w(f"<h2>Incidents ({len(incidents)})</h2>")
    if not incidents:
        w('<p class="muted">none</p>')
    else:
        w("<table><tr><th>severity</th><th>what happened</th><th>records (customer / shipment)</th>"
          "<th>sent out</th><th>connections</th><th>alerts</th></tr>")
        for inc in incidents:
            s = inc.get("severity")
            r = inc.get("records") or {}
            mine = by_incident.get(inc.get("incident_id"), [])
            w(f"<tr><td><span class=\"sev sev{s}\">{esc(severity_name(s))}</span></td><td>"
              f"<details><summary>{esc(inc.get('title'), 400)}</summary>")
            w("<ul>" + "".join(f"<li>{esc(x, 400)}</li>" for x in inc.get("why") or ()) + "</ul>")
            dests = "; ".join(" ".join(str(x) for x in (d.get("name") or ", ".join(d.get("addresses") or ()),
                                                       f"({d.get('org')}, {d.get('country')})" if d.get("org")
                                                       else "") if x) for d in inc.get("destinations") or ())
            w(f"<p class=\"muted\">incident <code>{esc(inc.get('incident_id'))}</code>; hosts "
              f"{esc(', '.join(inc.get('src_hosts') or ()), 200)}; to {esc(dests, 300)}; captures "
              f"{esc(', '.join(os.path.basename(c) for c in inc.get('captures') or ()), 300)}</p>")
            if inc.get("next_steps"):
                w("<pre>" + "\n".join(esc(x, 2000) for x in inc["next_steps"]) + "</pre>")
            if mine:
                _alert_rows(w, mine, by)
            w("</details></td>"
              f"<td class=\"n\">{fmt_int(r.get('customer'))} / {fmt_int(r.get('shipment'))}</td>"
              f"<td class=\"n\">{fmt_bytes(inc.get('bytes_out'))}</td><td class=\"n\">{fmt_int(inc.get('flows'))}</td>"
              f"<td class=\"n\">{len(mine)}</td></tr>")
        w("</table>")
    loose = by_incident.get(None, [])
    if loose:
        w(f"<h2>Alerts outside incidents ({len(loose)})</h2>")
        _alert_rows(w, loose, by)


def render(data: dict) -> str:
    night, labels, by = data["night"], data["labels"], data["by"]
    T = data["totals"]
    h = []
    w = h.append
    w("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      f"<title>inspector nightly report {esc(night.isoformat())}</title><style>{CSS}</style></head><body>")
    w(f"<h1>Nightly report: {esc(night.isoformat())}</h1>")
    w(f"<p class=\"muted\">database <code>{esc(data['db'])}</code>; nights are dates in {esc(data['tz'])}; trend "
      f"over {len(labels)} nights ({esc(labels[0])} to {esc(labels[-1])}); volumes are what local hosts sent to "
      f"non-local peers.</p>")

    # summary cards
    sev = defaultdict(int)
    for a in data["alerts"]:
        sev[a["severity"]] += 1

    def card(title, value, series, fmt):
        med, ratio = _ratio(series[-1], series[:-1])
        d = f"{ratio} vs median {esc(fmt(med))}" if med else "no earlier nights"
        return f'<div class="card"><div class="muted">{esc(title)}</div><div class="v">{esc(fmt(value))}</div>' \
               f'<div class="d">{d}</div>{spark_bars(series, labels, fmt)}</div>'
    w('<div class="cards">')
    w(card("sent out", T["bytes"][-1], T["bytes"], fmt_bytes))
    w(card("records (customer + shipment)", T["records"][-1], T["records"], fmt_int))
    w(card("flows", T["flows"][-1], T["flows"], fmt_int))
    al = ", ".join(f"{n} {severity_name(s)}" for s, n in sorted(sev.items(), key=lambda kv: (kv[0] is None, kv[0])))
    w(f'<div class="card"><div class="muted">incidents</div><div class="v">{len(data["incidents"])}</div>'
      f'<div class="d">{esc(_incident_mix(data["incidents"])) or "none"}</div></div>')
    w(f'<div class="card"><div class="muted">alerts</div><div class="v">{len(data["alerts"])}</div>'
      f'<div class="d">{esc(al) or "none"}</div>{spark_bars(T["alerts"], labels, fmt_int)}</div>')
    w("</div>")
    rc = data["records"]
    w(f"<p class=\"muted\">records tonight: customer {fmt_int(rc[0])}, shipment {fmt_int(rc[1])}</p>")

    _incidents_section(w, data, by)

    w("<h2>Trend</h2><div class=\"charts\">")
    w(trend_chart(T["bytes"], labels, "bytes sent out per night", fmt_bytes))
    w(trend_chart(T["records"], labels, "customer + shipment records per night", fmt_int))
    w("</div>")

    # hosts
    ents = data["entities"]
    tonight = [(e, s) for e, s in ents.items() if s["bytes"][-1] or s["records"][-1] or s["all_flows"]]
    tonight.sort(key=lambda es: (-es[1]["bytes"][-1], es[0]))
    w(f"<h2>{'Hosts' if by == 'host' else 'Roles'} ({len(tonight)})</h2>")
    w(f"<table><tr><th>{'host' if by == 'host' else 'role'}</th><th>sent out</th><th>median</th><th>vs median</th>"
      "<th>trend (sent)</th><th>records</th><th>vs median</th><th>trend (records)</th><th>flows</th>"
      "<th>alerts</th></tr>")
    for e, s in tonight:
        med_b, r_b = _ratio(s["bytes"][-1], s["bytes"][:-1])
        _, r_r = _ratio(s["records"][-1], s["records"][:-1])
        w(f"<tr><td>{esc(e, 40)}</td><td class=\"n\">{fmt_bytes(s['bytes'][-1])}</td>"
          f"<td class=\"n\">{fmt_bytes(med_b) if med_b else '-'}</td><td class=\"n\">{r_b}</td>"
          f"<td>{spark_bars(s['bytes'], labels, fmt_bytes)}</td><td class=\"n\">{fmt_int(s['records'][-1])}</td>"
          f"<td class=\"n\">{r_r}</td><td>{spark_bars(s['records'], labels, fmt_int)}</td>"
          f"<td class=\"n\">{fmt_int(s['all_flows'])}</td>"
          f"<td class=\"n\">{data['alerts_by_entity'].get(e, 0)}</td></tr>")
    w("</table>")

    # destinations
    dests = [(k, s) for k, s in data["dests"].items() if s["flows"][-1]]
    dests.sort(key=lambda ks: (-ks[1]["bytes"][-1], ks[0]))
    w(f"<h2>Destinations ({len(dests)})</h2>")
    w("<table><tr><th>organisation</th><th>country</th><th>sent out</th><th>trend (sent)</th><th>records</th>"
      f"<th>flows</th><th>{'hosts' if by == 'host' else 'roles'}</th></tr>")
    for (org, cc), s in dests[:200]:
        new = ' <span class="new">first seen</span>' if (org or cc) and data["first"].get((org, cc)) == night else ""
        hosts = ", ".join(sorted(s["hosts"]))
        w(f"<tr><td>{esc(org or '(unknown)', 50)}{new}</td><td>{esc(cc or '-')}</td>"
          f"<td class=\"n\">{fmt_bytes(s['bytes'][-1])}</td><td>{spark_bars(s['bytes'], labels, fmt_bytes)}</td>"
          f"<td class=\"n\">{fmt_int(s['records'][-1])}</td><td class=\"n\">{fmt_int(s['flows'][-1])}</td>"
          f"<td>{esc(hosts, 80)}</td></tr>")
    w("</table>")
    if len(dests) > 200:
        w(f"<p class=\"muted\">{len(dests) - 200} more destinations not shown.</p>")

    # countries
    by_cc = defaultdict(int)
    for (org, cc), s in data["dests"].items():
        by_cc[cc or "unknown"] += s["bytes"][-1]
    rows = sorted(((c, v) for c, v in by_cc.items() if v), key=lambda cv: (-cv[1], cv[0]))[:15]
    w("<h2>Sent out by destination country</h2>")
    w(hbars(rows))

    # captures
    caps = data["captures"]
    w(f"<h2>Captures ({len(caps)})</h2>")
    if caps:
        w("<table><tr><th>host</th><th>capture</th><th>sha256</th><th>packets</th><th>size</th><th>flows</th>"
          "<th>policy alerts</th></tr>")
        for host, rel, sha, flows, nal, packets, nbytes in caps:
            w(f"<tr><td>{esc(host)}</td><td>{esc(rel, 70)}</td><td><code>{esc(sha[:16])}</code></td>"
              f"<td class=\"n\">{fmt_int(packets)}</td><td class=\"n\">{fmt_bytes(nbytes)}</td>"
              f"<td class=\"n\">{fmt_int(flows)}</td><td class=\"n\">{fmt_int(nal)}</td></tr>")
        w("</table>")
    w("<p class=\"muted\">Batch alerts (signature ids 3000000-3099999) compare each host with its own history: "
      "first-seen destination organisations and countries, and nightly volumes above median + k\u00b7MAD "
      "(see signatures/README.md, \u201cBatch baselines\u201d).</p>")
    w("</body></html>\n")
    return "".join(h)


def write_report(store, night, out_path: str, nights: int = 14, by: str = "host") -> dict:
    """Render the night's report into ``out_path`` (temp file + rename).  Raises ValueError for a night
    without data."""
    data = night_data(store, night, nights=nights, by=by)
    page = render(data)
    d = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, out_path)
    hosts = sum(1 for s in data["entities"].values() if s["bytes"][-1] or s["records"][-1] or s["all_flows"])
    return {"night": data["night"].isoformat(), "alerts": len(data["alerts"]), "incidents": len(data["incidents"]),
            "hosts": hosts}
