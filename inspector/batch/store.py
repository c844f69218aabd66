"""The batch database: DuckDB (embedded, one file) with one Parquet file per capture alongside.

Layout: ``--db PATH`` is the DuckDB file; ``<dir of PATH>/parquet/<sha256>.parquet``
holds each processed capture's flows (the ``flows.parquet`` columns of
``inspector scan``, with their Zeek names, plus ``capture_sha256``, ``host``,
``seq``, ``role``, ``night``).

Tables (see ``SCHEMA``):

* ``captures``: one row per capture content (SHA-256 of the file bytes):
  ``status`` ``done`` or ``error`` (not a readable capture; skipped by later
  runs unless ``--retry-errors``), where it was found, counts, scan stats.
* ``flows``: every flow of every capture; the flow fields with ``.`` written
  ``_`` (``id_orig_h``...), plus ``capture_sha256``, ``host``, ``seq`` (order
  within the capture), ``night``, ``role``.
* ``alerts``: policy alerts of each capture (``source = 'policy'``) and batch
  baseline alerts (``source = 'batch'``): a few columns for queries and the
  whole Suricata-EVE record in ``eve`` (JSON text).
* ``daily``: per night, host, role of the local host, direction, destination
  organisation and country: flows, bytes and packets sent by the local side,
  bytes received, customer and shipment records, first and last flow start.
* ``evidence``: per connection that left data or that an alert covers: its content.jsonl record
  (masked samples, salted value and record hashes), its HTTP methods and DNS queries; what
  incidents count DISTINCT across captures and put in their titles.
* ``incidents``: per night, the incidents its alerts make (``inspector.incidents``: one per story,
  records counted DISTINCT over every capture of the night); the whole incidents.jsonl record in
  ``record``, and each alert's ``incident_id`` in ``alerts``.  Rebuilt for every night that got new
  alerts.
* ``nights``: a view, the totals per night.
* ``baseline_pending``: nights whose baseline alerts must be (re)computed.
* ``files``: a cache path + size + mtime -> SHA-256, so unchanged files are not re-read to be
  recognised (``--rehash`` ignores it).
* ``meta``: schema version, the time zone of nights.

Atomicity: ``commit`` writes the Parquet file under a temporary name, renames
it into place, then inserts the capture's flows, alerts, aggregates, pending
nights and its ``captures`` row in ONE transaction (``commit_many``: the
captures of a chain, see ``chains``, in one transaction together).  A capture is processed
exactly when its row exists; a kill at any moment leaves either nothing of it
in the database (it is processed again next run; its Parquet file, if already
renamed, is rewritten with the same content) or all of it.  The ``captures``
primary key makes a second commit of the same content fail instead of
duplicating rows.  Only one process can have the database open for writing
(DuckDB's file lock), so two batches never interleave.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..timeutil import format_ts
from .worker import DAILY_COLUMNS, BATCH_COLUMNS, CaptureResult, night_of, tz_of

SCHEMA_VERSION = 2
#: statements that bring a database of an older schema version up to this one, by version
_MIGRATIONS = {1: ["ALTER TABLE alerts ADD COLUMN IF NOT EXISTS incident_id VARCHAR"]}
PARQUET_DIR = "parquet"
TMP_SUFFIX = ".tmp"


class StoreError(Exception):
    """A database problem worth one line (locked, not a batch database, version mismatch)."""


def db_column(field: str) -> str:
    return field.replace(".", "_")


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    if pa.types.is_map(t):
        return f"MAP({_duck_type(t.key_type)}, {_duck_type(t.item_type)})"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {_duck_type(f.type)}" for f in t) + ")"
    raise TypeError(f"no DuckDB type for {t}")


def _flows_ddl() -> str:
    from .worker import flow_schema
    sch = flow_schema()
    first = [sch.field(c) for c in ("capture_sha256", "host", "seq", "night", "role")]
    rest = [f for f in sch if f.name not in BATCH_COLUMNS]
    cols = ",\n  ".join(f'"{db_column(f.name)}" {_duck_type(f.type)}' for f in first + rest)
    return f"CREATE TABLE IF NOT EXISTS flows (\n  {cols}\n)"


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS captures (
  sha256 VARCHAR PRIMARY KEY,
  status VARCHAR NOT NULL,          -- done | error
  error VARCHAR,
  path VARCHAR, host VARCHAR, rel VARCHAR, size BIGINT,
  flows BIGINT, alerts BIGINT, packets BIGINT, bytes BIGINT,
  first_ts DOUBLE, last_ts DOUBLE,
  parquet VARCHAR,                  -- relative to the database directory
  policy BOOLEAN,                   -- whether policy alerts were computed
  stats VARCHAR,                    -- the scan's stats (JSON)
  elapsed_s DOUBLE, processed_at TIMESTAMP,
  worker VARCHAR                    -- host:pid that scanned it
)""",
    """CREATE TABLE IF NOT EXISTS alerts (
  alert_id VARCHAR PRIMARY KEY,
  source VARCHAR NOT NULL,          -- policy | batch
  capture_sha256 VARCHAR,           -- the capture of a policy alert; NULL for batch alerts
  night DATE NOT NULL, host VARCHAR, role VARCHAR, ts DOUBLE,
  signature_id BIGINT, signature VARCHAR, category VARCHAR, severity INTEGER,
  src_ip VARCHAR, dest_ip VARCHAR, dst_org VARCHAR, dst_country VARCHAR,
  eve VARCHAR,                      -- the Suricata-EVE record (JSON)
  incident_id VARCHAR               -- the incident it belongs to (incidents table)
)""",
    """CREATE TABLE IF NOT EXISTS evidence (
  capture_sha256 VARCHAR NOT NULL, uid VARCHAR NOT NULL,
  content VARCHAR,                  -- the connection's content.jsonl record (JSON; masked, salted hashes)
  http_methods VARCHAR,             -- {method: requests} (JSON)
  dns_queries BIGINT,
  PRIMARY KEY (capture_sha256, uid)
)""",
    """CREATE TABLE IF NOT EXISTS incidents (
  night DATE NOT NULL, incident_id VARCHAR NOT NULL,
  severity INTEGER, first_ts DOUBLE, last_ts DOUBLE, title VARCHAR,
  records_customer BIGINT, records_shipment BIGINT, flows BIGINT, bytes_out BIGINT,
  record VARCHAR,                   -- the incidents.jsonl record (JSON)
  PRIMARY KEY (night, incident_id)
)""",
    """CREATE TABLE IF NOT EXISTS daily (
  night DATE NOT NULL, host VARCHAR NOT NULL, role VARCHAR NOT NULL, direction VARCHAR NOT NULL,
  dst_org VARCHAR NOT NULL, dst_country VARCHAR NOT NULL,          -- '' when unknown
  flows BIGINT, bytes_out BIGINT, bytes_in BIGINT, packets_out BIGINT,
  records_customer BIGINT, records_shipment BIGINT, first_ts DOUBLE, last_ts DOUBLE,
  PRIMARY KEY (night, host, role, direction, dst_org, dst_country)
)""",
    """CREATE TABLE IF NOT EXISTS baseline_pending (night DATE PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT,
  sha256 VARCHAR)""",
    """CREATE OR REPLACE VIEW nights AS
SELECT night, count(DISTINCT host) AS hosts, sum(flows) AS flows,
       sum(CASE WHEN direction IN ('outbound', 'inbound') THEN bytes_out ELSE 0 END) AS bytes_out,
       sum(records_customer) AS records_customer, sum(records_shipment) AS records_shipment
FROM daily GROUP BY night""",
]

_DAILY_UPSERT = """INSERT INTO daily BY NAME SELECT * FROM _batch_daily ON CONFLICT DO UPDATE SET
  flows = daily.flows + excluded.flows, bytes_out = daily.bytes_out + excluded.bytes_out,
  bytes_in = daily.bytes_in + excluded.bytes_in, packets_out = daily.packets_out + excluded.packets_out,
  records_customer = daily.records_customer + excluded.records_customer,
  records_shipment = daily.records_shipment + excluded.records_shipment,
  first_ts = least(daily.first_ts, excluded.first_ts), last_ts = greatest(daily.last_ts, excluded.last_ts)"""

_DAILY_SCHEMA = pa.schema([("night", pa.date32()), ("host", pa.string()), ("role", pa.string()),
                           ("direction", pa.string()), ("dst_org", pa.string()), ("dst_country", pa.string()),
                           ("flows", pa.int64()), ("bytes_out", pa.int64()), ("bytes_in", pa.int64()),
                           ("packets_out", pa.int64()), ("records_customer", pa.int64()),
                           ("records_shipment", pa.int64()), ("first_ts", pa.float64()),
                           ("last_ts", pa.float64())])
ALERT_SCHEMA = pa.schema([("alert_id", pa.string()), ("source", pa.string()), ("capture_sha256", pa.string()),
                          ("night", pa.date32()), ("host", pa.string()), ("role", pa.string()),
                          ("ts", pa.float64()), ("signature_id", pa.int64()), ("signature", pa.string()),
                          ("category", pa.string()), ("severity", pa.int32()), ("src_ip", pa.string()),
                          ("dest_ip", pa.string()), ("dst_org", pa.string()), ("dst_country", pa.string()),
                          ("eve", pa.string())])


def _json_default(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return sorted(obj) if isinstance(obj, (set, frozenset)) else list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def eve_json(rec: dict) -> str:
    return orjson.dumps(rec, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
                        default=_json_default).decode("utf-8")


def eve_time(ts: float) -> str:
    """Suricata's timestamp format: ``2025-11-25T02:00:00.000104+0000``."""
    return format_ts(ts, "%Y-%m-%dT%H:%M:%S.%f+0000")


def parse_eve_time(value) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    s = value.strip().replace("Z", "+00:00")
    if len(s) > 5 and s[-5] in "+-" and s[-3] != ":":          # +0000 -> +00:00
        s = s[:-2] + ":" + s[-2:]
    try:
        d = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def policy_alert_id(capture_sha256: str, index: int) -> str:
    """The ``alerts`` table id of a capture's ``index``-th policy alert (also what alert delivery sends)."""
    return f"{capture_sha256[:16]}-{index:06d}"


def alert_row(eve: dict, alert_id: str, source: str, night, host, role=None, capture=None, ts=None) -> dict:
    """The ``alerts`` table row of an EVE alert record."""
    al = eve.get("alert") or {}
    dest = eve.get("destination") or {}
    sev = al.get("severity")
    return {"alert_id": alert_id, "source": source, "capture_sha256": capture, "night": night, "host": host,
            "role": role, "ts": ts if ts is not None else parse_eve_time(eve.get("timestamp")),
            "signature_id": al.get("signature_id"), "signature": al.get("signature"),
            "category": al.get("category"), "severity": int(sev) if sev is not None else None,
            "src_ip": eve.get("src_ip"), "dest_ip": eve.get("dest_ip"),
            "dst_org": dest.get("org") if isinstance(dest, dict) else None,
            "dst_country": dest.get("country") if isinstance(dest, dict) else None,
            "eve": eve_json(eve)}


class Store:
    def __init__(self, db_path: str, read_only: bool = False):
        import duckdb
        self.db_path = db_path
        self.root = os.path.dirname(os.path.abspath(db_path))
        self.parquet_dir = os.path.join(self.root, PARQUET_DIR)
        self.read_only = read_only
        if read_only and not os.path.exists(db_path):
            raise StoreError(f"{db_path}: no such database")
        if not read_only:
            os.makedirs(self.parquet_dir, exist_ok=True)
        try:
            self.con = duckdb.connect(db_path, read_only=read_only)
        except duckdb.IOException as e:
            msg = str(e).splitlines()[0]
            if "lock" in msg.lower():
                raise StoreError(f"{db_path}: in use by another process (a batch is running?)") from None
            raise StoreError(f"{db_path}: {msg}") from None
        except duckdb.Error as e:
            raise StoreError(f"{db_path}: {str(e).splitlines()[0]}") from None
        if not read_only:
            self._init_schema()
        else:
            v = self.meta("schema_version")
            if v is None:
                raise StoreError(f"{db_path}: not an inspector batch database")
            if int(v) in _MIGRATIONS:
                raise StoreError(f"{db_path}: schema version {v}, older than this inspector's "
                                 f"{SCHEMA_VERSION}: run 'inspector batch' on it once to bring it up to date")

    # -- schema ----------------------------------------------------------------------------
    def _init_schema(self) -> None:
        con = self.con
        con.execute("BEGIN")
        try:
            for ddl in SCHEMA[:1] + [_flows_ddl()] + SCHEMA[1:]:
                con.execute(ddl)
            v = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if v is None:
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(v[0]) in _MIGRATIONS:
                for version in range(int(v[0]), SCHEMA_VERSION):
                    for stmt in _MIGRATIONS.get(version, ()):
                        con.execute(stmt)
                # every night with alerts gets its incidents on the next run
                con.execute("INSERT INTO baseline_pending SELECT DISTINCT night FROM alerts ON CONFLICT DO NOTHING")
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
            elif int(v[0]) != SCHEMA_VERSION:
                raise StoreError(f"{self.db_path}: schema version {v[0]}, this inspector writes {SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def meta(self, key: str):
        try:
            row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        except Exception:
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                         [key, value])

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN ... COMMIT, or ROLLBACK when the block raises (anything, KeyboardInterrupt too)."""
        con = self.con
        con.execute("BEGIN")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception:
                pass
            raise

    # -- what is done ------------------------------------------------------------------------
    def processed(self) -> dict:
        """sha256 -> status of every recorded capture."""
        return dict(self.con.execute("SELECT sha256, status FROM captures").fetchall())

    def cached_hashes(self) -> dict:
        """path -> (size, mtime_ns, sha256) from earlier runs."""
        return {p: (s, m, h) for p, s, m, h in
                self.con.execute("SELECT path, size, mtime_ns, sha256 FROM files").fetchall()}

    def remember_hashes(self, rows: list) -> None:
        """Cache ``(path, size, mtime_ns, sha256)``; a cache only, so outside the capture transactions."""
        if not rows:
            return
        tbl = pa.table({"path": [r[0] for r in rows], "size": [r[1] for r in rows],
                        "mtime_ns": [r[2] for r in rows], "sha256": [r[3] for r in rows]})
        self.con.register("_batch_files", tbl)
        try:
            self.con.execute("INSERT INTO files BY NAME SELECT * FROM _batch_files ON CONFLICT DO UPDATE SET "
                             "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256")
        finally:
            self.con.unregister("_batch_files")

    def forget_errors(self) -> int:
        """Drop the ``error`` captures so they are tried again."""
        n = self.con.execute("SELECT count(*) FROM captures WHERE status = 'error'").fetchone()[0]
        self.con.execute("DELETE FROM captures WHERE status = 'error'")
        return n

    def clean_temp(self) -> list:
        """Remove temporary Parquet files left by a killed run (only we write there, under the DB lock)."""
        removed = []
        if os.path.isdir(self.parquet_dir):
            for name in os.listdir(self.parquet_dir):
                if name.endswith(TMP_SUFFIX):
                    try:
                        os.remove(os.path.join(self.parquet_dir, name))
                        removed.append(name)
                    except OSError:
                        pass
        return removed

    # -- committing a capture --------------------------------------------------------------------
    def parquet_path(self, sha256: str) -> str:
        return os.path.join(self.parquet_dir, f"{sha256}.parquet")

    def _write_parquet(self, sha256: str, table: pa.Table) -> str:
        final = self.parquet_path(sha256)
        tmp = os.path.join(self.parquet_dir, f".{sha256}.parquet.{os.getpid()}{TMP_SUFFIX}")
        pq.write_table(table, tmp, compression="zstd")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        try:
            dfd = os.open(self.parquet_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return final

    def commit(self, res: CaptureResult, tz="UTC") -> None:
        """Store one capture's results atomically (module docstring).  Raises on a duplicate commit."""
        self.commit_many([res], tz)

    def commit_many(self, results: list, tz="UTC") -> None:
        """Store the results of several captures (a chain of consecutive captures of one host, see
        ``chains``) in ONE transaction: all of them or none.  Raises on a duplicate commit."""
        tzinfo = tz_of(tz) if isinstance(tz, str) else tz
        prepared = [self._prepare(res, tzinfo) for res in results]
        with self.transaction():
            for res, row, alerts in prepared:
                self._insert(res, row, alerts)

    def _prepare(self, res: CaptureResult, tzinfo) -> tuple:
        """Before the transaction: the capture's Parquet file in place, its alert rows and its
        ``captures`` row."""
        parquet_rel = None
        flows = res.flows
        if res.status == "done":
            if flows is None:
                raise ValueError("a done capture needs its flows table")
            self._write_parquet(res.sha256, flows)
            parquet_rel = os.path.join(PARQUET_DIR, f"{res.sha256}.parquet")
        alerts = []
        if res.status == "done":
            first_night = None
            if res.stats.get("first_ts") is not None:
                first_night = night_of(res.stats["first_ts"], tzinfo)
            for i, eve in enumerate(res.alerts):
                eve = dict(eve)
                eve.setdefault("host", res.host)
                ts = parse_eve_time(eve.get("timestamp"))
                if ts is None and isinstance(eve.get("ts"), (int, float)):
                    ts = float(eve["ts"])
                night = night_of(ts, tzinfo) if ts is not None else first_night
                if night is None:
                    night = _dt.date(1970, 1, 1)
                alerts.append(alert_row(eve, policy_alert_id(res.sha256, i), "policy", night, res.host,
                                        capture=res.sha256, ts=ts))
        st = res.stats or {}
        row = [res.sha256, res.status, res.error, res.path, res.host, res.rel, res.size,
               flows.num_rows if flows is not None else 0, len(alerts), st.get("packets_read"),
               st.get("bytes_read"), st.get("first_ts"), st.get("last_ts"), parquet_rel, bool(res.policy),
               json.dumps(st, sort_keys=True, default=str), round(res.elapsed, 3),
               _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None), res.worker or None]
        return res, row, alerts

    def _insert(self, res: CaptureResult, row: list, alerts: list) -> None:
        """Inside the transaction: one capture's rows in every table."""
        con = self.con
        con.execute("INSERT INTO captures VALUES (" + ", ".join("?" * len(row)) + ")", row)
        if res.status != "done":
            return
        flows = res.flows
        tables = []
        if flows.num_rows:
            tables.append(("_batch_flows", flows.rename_columns([db_column(c) for c in flows.column_names]),
                           ["INSERT INTO flows BY NAME SELECT * FROM _batch_flows"]))
        if alerts:
            tables.append(("_batch_alerts", pa.Table.from_pylist(alerts, schema=ALERT_SCHEMA),
                           ["INSERT INTO alerts BY NAME SELECT * FROM _batch_alerts"]))
        if res.evidence:
            ev = res.evidence
            tables.append(("_batch_evidence", pa.table({
                "capture_sha256": [res.sha256] * len(ev),
                "uid": [e["uid"] for e in ev],
                "content": [None if e.get("content") is None else eve_json(e["content"]) for e in ev],
                "http_methods": [json.dumps(e.get("http_methods") or {}, sort_keys=True) for e in ev],
                "dns_queries": [int(e.get("dns_queries") or 0) for e in ev]}),
                ["INSERT INTO evidence BY NAME SELECT * FROM _batch_evidence"]))
        if res.daily:
            cols = list(zip(*res.daily))
            tables.append(("_batch_daily",
                           pa.table({c: list(v) for c, v in zip(DAILY_COLUMNS, cols)}, schema=_DAILY_SCHEMA),
                           [_DAILY_UPSERT, "INSERT INTO baseline_pending SELECT DISTINCT night FROM _batch_daily "
                                           "ON CONFLICT DO NOTHING"]))
        for name, table, statements in tables:
            con.register(name, table)
            try:
                for sql in statements:
                    con.execute(sql)
            finally:
                con.unregister(name)

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params=None) -> list:
        return self.con.execute(sql, params or []).fetchall()

    def frame(self, sql: str, params=None):
        return self.con.execute(sql, params or []).df()

