"""History and baselines: batch alerts from the ``daily`` table.

For every night whose data changed (``baseline_pending``) and every later
night, the batch alerts of the night are recomputed from scratch in one
transaction (deleted and inserted again), so they are idempotent and survive a
kill at any moment.  The entity is the site host (the capture sub-folder) or,
with ``by="role"``, the role of the local host from the site file.

Only what the local side sends to non-local peers counts (``outbound`` and
``inbound`` rows; an active FTP data channel is inbound yet carries data out).
"History nights" of an entity are the earlier nights on which it had any
traffic in the database; the baseline uses the last ``nights`` of them and no
alert is raised before it has ``min_nights`` of them.

* **first-seen destination** (3000001 organisation, 3000002 country): an
  organisation (or country) the entity sent outbound traffic to tonight and on
  none of its earlier nights (all of them, not just the window).
* **volume above baseline** (3000011 bytes sent, 3000012 customer+shipment
  records): tonight's total > median + k * scale over the window, where
  ``scale = max(1.4826 * MAD, rel_floor * median, abs floor)`` (``min_bytes``,
  ``min_records``): the floors keep a perfectly steady host (MAD 0) from
  alerting on noise.
"""
from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from dataclasses import dataclass

from ..severity import SEVERITY_NAMES


BATCH_SID_MIN, BATCH_SID_MAX = 3000000, 3099999
SID_FIRST_ORG = 3000001
SID_FIRST_COUNTRY = 3000002
SID_VOLUME_BYTES = 3000011
SID_VOLUME_RECORDS = 3000012

#: sid -> (slug, message, category, severity); severities as the policy engine's: 1 critical .. 4 low.
SIGNATURES = {
    SID_FIRST_ORG: ("batch-first-seen-org", "First-seen destination organisation for this host",
                    "New destination", 4),
    SID_FIRST_COUNTRY: ("batch-first-seen-country", "First-seen destination country for this host",
                        "New destination", 3),
    SID_VOLUME_BYTES: ("batch-bytes-above-baseline", "Bytes sent far above this host's baseline",
                       "Possible exfiltration", 3),
    SID_VOLUME_RECORDS: ("batch-records-above-baseline",
                         "Customer and shipment records sent far above this host's baseline",
                         "Possible exfiltration", 2),
}
MAD_SCALE = 1.4826      # MAD -> standard deviation for normal data
NO_ROLE = "(none)"


@dataclass(frozen=True)
class BaselineConfig:
    nights: int = 14            # N: history window (the entity's last N nights with traffic)
    k: float = 5.0              # alert above median + k * scale
    min_nights: int = 5         # no alert before this many history nights
    by: str = "host"            # host | role
    rel_floor: float = 0.1      # scale >= rel_floor * median
    min_bytes: int = 1_000_000  # scale >= this many bytes (bytes metric)
    min_records: int = 50       # scale >= this many records (records metric)

    def check(self) -> None:
        if self.nights < 1 or self.min_nights < 1 or self.min_nights > self.nights:
            raise ValueError(f"baseline nights {self.nights} and minimum history {self.min_nights}: need "
                             "1 <= minimum <= nights")
        if self.k <= 0:
            raise ValueError(f"baseline k must be positive, not {self.k}")
        if self.by not in ("host", "role"):
            raise ValueError(f"baseline entity must be host or role, not {self.by!r}")


def median(values: list) -> float:
    v = sorted(values)
    n = len(v)
    if n == 0:
        return 0.0
    mid = n // 2
    return float(v[mid]) if n % 2 else (v[mid - 1] + v[mid]) / 2.0


def robust_threshold(history: list, k: float, rel_floor: float, abs_floor: float) -> tuple:
    """(median, MAD, scale, threshold) of a history: median + k * max(1.4826 MAD, rel_floor median, abs_floor)."""
    med = median(history)
    mad = median([abs(x - med) for x in history])
    scale = max(MAD_SCALE * mad, rel_floor * med, abs_floor)
    return med, mad, scale, med + k * scale


class History:
    """The ``daily`` table folded per entity: the nights with traffic and nightly volumes of every entity
    (entities x nights), the first night of every (entity, destination) (entities x destinations), and the
    per-destination detail of the nights from ``since`` on (the nights being recomputed)."""

    def __init__(self, con, by: str = "host", since=None):
        ent = "host" if by == "host" else f"coalesce(nullif(role, ''), '{NO_ROLE}')"
        ext = "direction IN ('outbound', 'inbound')"
        self.by = by
        self.observed = defaultdict(set)                  # entity -> nights with any traffic
        # entity -> night -> [bytes_out, customer, shipment, flows, last_ts, bytes_in]
        self.volume = defaultdict(dict)
        for night, entity, b_out, cust, ship, flows, t1, b_in, any_ext in con.execute(f"""
                SELECT night, {ent}, sum(bytes_out) FILTER ({ext}), sum(records_customer) FILTER ({ext}),
                       sum(records_shipment) FILTER ({ext}), sum(flows) FILTER ({ext}), max(last_ts) FILTER ({ext}),
                       sum(bytes_in) FILTER ({ext}), count(*) FILTER ({ext})
                FROM daily GROUP BY ALL""").fetchall():
            self.observed[entity].add(night)
            if any_ext:
                self.volume[entity][night] = [b_out or 0, cust or 0, ship or 0, flows or 0, t1, b_in or 0]
        self.first_org = {}                               # (entity, org) -> first night (outbound)
        self.first_cc = {}
        for col, first in (("dst_org", self.first_org), ("dst_country", self.first_cc)):
            for entity, value, night in con.execute(f"""
                    SELECT {ent}, {col}, min(night) FROM daily WHERE direction = 'outbound' AND {col} <> ''
                    GROUP BY ALL""").fetchall():
                first[(entity, value)] = night
        # (entity, night) -> (org, country) -> [bytes_out, customer, shipment, flows, first_ts, bytes_in]
        self.dest = defaultdict(dict)
        self.first_ts = {}                                # (entity, night, kind, value) -> first outbound flow
        for night, entity, direction, org, cc, b_out, cust, ship, flows, t0, b_in in con.execute(f"""
                SELECT night, {ent}, direction, dst_org, dst_country, sum(bytes_out), sum(records_customer),
                       sum(records_shipment), sum(flows), min(first_ts), sum(bytes_in)
                FROM daily WHERE night >= ? AND {ext} GROUP BY ALL""", [since or _dt.date.min]).fetchall():
            d = self.dest[(entity, night)].get((org, cc))
            if d is None:
                self.dest[(entity, night)][(org, cc)] = [b_out or 0, cust or 0, ship or 0, flows or 0, t0, b_in or 0]
            else:
                d[0] += b_out or 0
                d[1] += cust or 0
                d[2] += ship or 0
                d[3] += flows or 0
                d[4] = min(d[4], t0)
                d[5] += b_in or 0
            if direction == "outbound":
                for kind, value in (("org", org), ("country", cc)):
                    if value:
                        tk = (entity, night, kind, value)
                        self.first_ts[tk] = t0 if tk not in self.first_ts else min(self.first_ts[tk], t0)

    def history_nights(self, entity, night) -> list:
        return sorted(n for n in self.observed[entity] if n < night)


def _dest_obj(org, cc) -> dict:
    return {"name": None, "address": None, "country": cc or None, "asn": None, "org": org or None, "group": None,
            "category": None, "allowed": None}


def _eve(sid: int, ts: float, night, entity: str, cfg: "BaselineConfig", dest: dict, figures: dict,
         evidence: dict, group: dict, site_name=None, tz=None) -> dict:
    """A batch alert in the policy engine's EVE shape (``inspector.policy.alerts.build_alert``): no single
    flow, so the connection fields are null; the night is the ``window``; the figures are in ``evidence``."""
    from .store import eve_time
    slug, message, category, sev = SIGNATURES[sid]
    if tz is None:
        tz = _dt.timezone.utc
    start = _dt.datetime.combine(night, _dt.time(0), tzinfo=tz)
    by = cfg.by
    eve = {"timestamp": eve_time(ts), "event_type": "alert",
           "src_ip": None, "src_port": None, "dest_ip": None, "dest_port": None, "proto": None, "app_proto": None,
           "community_id": None, "uids": [],
           "alert": {"action": "allowed", "gid": 1, "signature_id": sid, "rev": 1, "signature": message,
                     "category": category, "severity": sev,
                     "metadata": {"severity_name": [SEVERITY_NAMES[sev]], "rule": [slug],
                                  "night": [night.isoformat()], by: [entity]}},
           "destination": dest, "data": {}}
    eve.update(figures)
    eve["evidence"] = evidence
    eve["window"] = {"start": eve_time(start.timestamp()), "seconds": int(
        (_dt.datetime.combine(night + _dt.timedelta(days=1), _dt.time(0), tzinfo=tz) - start).total_seconds()),
        "group": {by: entity, **group}}
    eve["night"] = night.isoformat()
    eve["host"] = entity if by == "host" else None
    eve["role"] = entity if by == "role" else None
    if site_name is not None:
        eve["site"] = site_name
    return eve


def night_alerts(hist: History, night: _dt.date, cfg: BaselineConfig, site_name=None, tz=None) -> list:
    """The batch alerts of one night (EVE dicts), deterministic order."""
    out = []
    entities = sorted(e for e, nights in hist.observed.items() if night in nights)
    for entity in entities:
        window_all = hist.history_nights(entity, night)
        window = window_all[-cfg.nights:]
        if len(window) < cfg.min_nights:
            continue
        dests = hist.dest.get((entity, night), {})
        # first-seen destinations
        for kind, sid, first in (("org", SID_FIRST_ORG, hist.first_org), ("country", SID_FIRST_COUNTRY,
                                                                         hist.first_cc)):
            values = sorted({(org if kind == "org" else cc) for (org, cc) in dests} - {""})
            for value in values:
                if first.get((entity, value)) != night:
                    continue
                rows = [(k, v) for k, v in dests.items() if (k[0] if kind == "org" else k[1]) == value]
                b = sum(v[0] for _, v in rows)
                cust = sum(v[1] for _, v in rows)
                ship = sum(v[2] for _, v in rows)
                flows = sum(v[3] for _, v in rows)
                if kind == "org":
                    ccs = sorted({k[1] for k, _ in rows if k[1]})
                    dest = _dest_obj(value, ccs[0] if len(ccs) == 1 else None)
                else:
                    orgs = sorted({k[0] for k, _ in rows if k[0]})
                    dest = _dest_obj(orgs[0] if len(orgs) == 1 else None, value)
                ts = hist.first_ts.get((entity, night, kind, value)) or 0.0
                out.append(_eve(sid, ts, night, entity, cfg, dest,
                                {"records": {"customer": cust, "shipment": ship}, "bytes_out": b,
                                 "bytes_in": sum(v[5] for _, v in rows), "flows": flows},
                                {"baseline": {"metric": f"first_seen_{kind}", "value": value,
                                              "nights": len(window_all), "first_night": window_all[0].isoformat(),
                                              "last_night": window_all[-1].isoformat()}},
                                {"dst_org" if kind == "org" else "dst_country": value}, site_name, tz))
        # volume above baseline
        vol = hist.volume.get(entity, {})
        today = vol.get(night)
        if today is None:
            continue
        for sid, metric, value_of, floor in (
                (SID_VOLUME_BYTES, "bytes_out", lambda v: v[0], cfg.min_bytes),
                (SID_VOLUME_RECORDS, "records", lambda v: v[1] + v[2], cfg.min_records)):
            series = [value_of(vol[n]) if n in vol else 0 for n in window]
            value = value_of(today)
            med, mad, scale, thr = robust_threshold(series, cfg.k, cfg.rel_floor, floor)
            if value <= thr:
                continue
            top = sorted(((value_of(v), k) for k, v in dests.items() if value_of(v) > 0), key=lambda t: (-t[0], t[1]))
            dest = _dest_obj(*top[0][1]) if top else _dest_obj(None, None)
            out.append(_eve(sid, today[4] or 0.0, night, entity, cfg, dest,
                            {"records": {"customer": today[1], "shipment": today[2]}, "bytes_out": today[0],
                             "bytes_in": today[5], "flows": today[3]},
                            {"baseline": {"metric": metric, "value": value, "median": med, "mad": mad,
                                          "scale": scale, "threshold": thr, "k": cfg.k,
                                          "ratio": round(value / med, 3) if med else None, "nights": len(window),
                                          "first_night": window[0].isoformat(), "last_night": window[-1].isoformat(),
                                          "history": series},
                             "top_destinations": [{"org": k[0] or None, "country": k[1] or None, "value": v}
                                                  for v, k in top[:5]]},
                            {}, site_name, tz))
    return out


def _alert_id(eve: dict, entity: str, by: str) -> str:
    sid = eve["alert"]["signature_id"]
    b = eve["evidence"]["baseline"]
    what = b["value"] if str(b["metric"]).startswith("first_seen") else b["metric"]
    return f"batch:{eve['night']}:{sid}:{by}={entity}:{what}"


def run_baselines(store, cfg: BaselineConfig, everything: bool = False, site_name: str | None = None,
                  on_alerts=None) -> tuple:
    """Recompute batch alerts from the earliest pending night on.  Returns (nights, alerts).
    ``on_alerts``: given each night's alerts once committed (EVE dicts with their ``alert_id``)."""
    import pyarrow as pa

    from .store import ALERT_SCHEMA, alert_row
    con = store.con
    if everything:
        con.execute("INSERT INTO baseline_pending SELECT DISTINCT night FROM daily ON CONFLICT DO NOTHING")
    start = con.execute("SELECT min(night) FROM baseline_pending").fetchone()[0]
    if start is None:
        return 0, 0
    nights = [r[0] for r in con.execute("SELECT DISTINCT night FROM daily WHERE night >= ? ORDER BY night",
                                        [start]).fetchall()]
    if not nights:
        con.execute("DELETE FROM baseline_pending")
        return 0, 0
    hist = History(con, by=cfg.by, since=nights[0])
    from .worker import tz_of
    tz = tz_of(store.meta("tz") or "UTC")
    total = 0
    for i, night in enumerate(nights):
        alerts = night_alerts(hist, night, cfg, site_name=site_name, tz=tz)
        rows = []
        for eve in alerts:
            entity = eve["host"] if cfg.by == "host" else eve["role"]
            rows.append(alert_row(eve, _alert_id(eve, entity, cfg.by), "batch", night,
                                  eve["host"], role=eve["role"], ts=None))
        with store.transaction():
            con.execute("DELETE FROM alerts WHERE source = 'batch' AND night = ?", [night])
            if rows:
                con.register("_batch_alerts", pa.Table.from_pylist(rows, schema=ALERT_SCHEMA))
                try:
                    con.execute("INSERT INTO alerts BY NAME SELECT * FROM _batch_alerts")
                finally:
                    con.unregister("_batch_alerts")
            con.execute("DELETE FROM baseline_pending WHERE night <= ?", [night])
            if i + 1 < len(nights):
                con.execute("INSERT INTO baseline_pending VALUES (?) ON CONFLICT DO NOTHING", [nights[i + 1]])
        if on_alerts is not None and rows:
            on_alerts([dict(eve, alert_id=row["alert_id"]) for eve, row in zip(alerts, rows)])
        total += len(rows)
    return len(nights), total
