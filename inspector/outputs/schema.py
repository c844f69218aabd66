"""One schema declaration per output stream: field name, type, one-line doc.

Every file a scan writes is declared here or next to the code that emits it:

* ``flows`` (``flows.jsonl``/``flows.parquet``), ``content``, ``weird``,
  ``alerts`` and ``incidents``: the ``Stream`` objects below (``core_streams()`` finds them);
* each protocol log (``dns.jsonl``, ``http.jsonl``...): the protocol module's
  ``LOG_SCHEMA`` (a ``Stream``), collected through the protocol registry
  (``inspector.protocols.MODULES``), so adding a protocol stays one module plus
  one registry line;
* ``stats.json``: ``STATS`` (one JSON object, not a stream of records).

The JSONL and Parquet writers (``inspector.outputs.writers``), the README's field
tables (``python -m inspector.outputs.schema --markdown``) and the schema tests
(tests/test_outputs_schema.py: every record of every stream on the bundled and
corpus captures) all read these declarations.  A field may be null unless the
stream says otherwise; ``optional`` fields may also be absent from a record.

This module is light on purpose: lower stages (flows, protocols, content)
import it, so it imports neither pyarrow nor any stage.  Arrow types are built
when first asked for.

Adding a stream = one ``Stream(...)`` declaration in this module (or, for a
protocol, ``LOG_SCHEMA`` in its module); the writers, README tables and tests
pick it up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Type", "STRING", "INT", "FLOAT", "BOOL", "TIME", "INTERVAL", "ADDR", "PORT", "ListOf", "MapOf",
           "Struct", "JSON", "Field", "Stream", "CONN_ID", "FLOWS", "CONTENT", "X509", "WEIRD", "ALERTS",
           "INCIDENTS", "STATS", "core_streams", "names", "CONN_FLOW_FIELDS", "DEST_FLOW_FIELDS",
           "CONTENT_FLOW_FIELDS", "streams", "stream", "markdown"]


# ----------------------------------------------------------------------------------------------
# types
# ----------------------------------------------------------------------------------------------

class Type:
    """A field's type: its README label, its Arrow type (built lazily) and a value check."""
    label = "?"

    def arrow(self):
        raise NotImplementedError

    def problem(self, value, where: str) -> str | None:
        """None when ``value`` (as decoded from JSON) fits; else one line saying why not."""
        raise NotImplementedError

    def arrow_value(self, value):
        """``value`` as pyarrow takes it for ``arrow()`` (identity except for free-form JSON)."""
        return value

    def __repr__(self) -> str:
        return self.label


class _Scalar(Type):
    def __init__(self, label: str, arrow_name: str, accept: tuple, doc: str):
        self.label = label
        self._arrow_name = arrow_name
        self._accept = accept
        self.doc = doc

    def arrow(self):
        import pyarrow as pa
        return getattr(pa, self._arrow_name)()

    def problem(self, value, where):
        if value is None:
            return None
        if isinstance(value, bool) and bool not in self._accept:
            return f"{where}: {value!r} is a bool, declared {self.label}"
        if not isinstance(value, self._accept):
            return f"{where}: {value!r} is a {type(value).__name__}, declared {self.label}"
        return None


#: Scalars.  JSON has one number type: an integer is accepted where a float is declared
#: (Arrow converts it), never the other way round.
STRING = _Scalar("string", "string", (str,), "text")
INT = _Scalar("int", "int64", (int,), "integer (64 bits)")
FLOAT = _Scalar("float", "float64", (float, int), "number")
BOOL = _Scalar("bool", "bool_", (bool,), "true or false")
TIME = _Scalar("time", "float64", (float, int), "epoch seconds (UTC), packet time")
INTERVAL = _Scalar("interval", "float64", (float, int), "seconds")
ADDR = _Scalar("addr", "string", (str,), "IPv4 or IPv6 address as text")
PORT = _Scalar("port", "int64", (int,), "transport port (ICMP: type or code, as Zeek)")


class ListOf(Type):
    def __init__(self, item: Type):
        self.item = item
        self.label = f"list<{item.label}>"

    def arrow(self):
        import pyarrow as pa
        return pa.list_(self.item.arrow())

    def problem(self, value, where):
        if value is None:
            return None
        if not isinstance(value, list):
            return f"{where}: {type(value).__name__} where a {self.label} is declared"
        for i, v in enumerate(value):
            p = self.item.problem(v, f"{where}[{i}]")
            if p:
                return p
        return None

    def arrow_value(self, value):
        if value is None:
            return None
        return [self.item.arrow_value(v) for v in value]


class MapOf(Type):
    """A JSON object with free keys (strings) and values of one type: Arrow ``map<string, T>``."""

    def __init__(self, value: Type):
        self.value = value
        self.label = f"map<string,{value.label}>"

    def arrow(self):
        import pyarrow as pa
        return pa.map_(pa.string(), self.value.arrow())

    def problem(self, value, where):
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"{where}: {type(value).__name__} where a {self.label} is declared"
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}: key {k!r} is not a string"
            p = self.value.problem(v, f"{where}.{k}")
            if p:
                return p
        return None

    def arrow_value(self, value):
        if value is None:
            return None
        return [(k, self.value.arrow_value(v)) for k, v in value.items()]


class Struct(Type):
    """A JSON object with declared keys (each a ``Field``): Arrow ``struct``."""

    def __init__(self, *fields: "Field"):
        self.fields = tuple(fields)
        self.by_name = {f.name: f for f in self.fields}
        self.label = "{" + ", ".join(f.name for f in self.fields) + "}"

    def arrow(self):
        import pyarrow as pa
        return pa.struct([pa.field(f.name, f.type.arrow()) for f in self.fields])

    def problem(self, value, where):
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"{where}: {type(value).__name__} where an object {self.label} is declared"
        probs = _record_problems(value, self.fields, self.by_name, where + ".", ordered=False)
        return probs[0] if probs else None

    def arrow_value(self, value):
        if value is None:
            return None
        return {f.name: f.type.arrow_value(value.get(f.name)) for f in self.fields}


class _Json(Type):
    """A free-form JSON object (detector evidence...): JSON text in Arrow."""
    label = "json"

    def arrow(self):
        import pyarrow as pa
        return pa.string()

    def problem(self, value, where):
        if value is None or isinstance(value, dict):
            return None
        return f"{where}: {type(value).__name__} where a JSON object is declared"

    def arrow_value(self, value):
        if value is None:
            return None
        import orjson
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


JSON = _Json()


# ----------------------------------------------------------------------------------------------
# fields and streams
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One field: its name in the record, its type, one line saying what it holds.
    ``optional``: the key may be absent (not merely null)."""
    name: str
    type: Type
    doc: str
    optional: bool = False


def _record_problems(record: dict, fields, by_name: dict, prefix: str, ordered: bool) -> list:
    probs = []
    for k in record:
        if k not in by_name:
            probs.append(f"{prefix}{k}: field not declared")
    for f in fields:
        if f.name not in record:
            if not f.optional:
                probs.append(f"{prefix}{f.name}: declared field missing")
            continue
        p = f.type.problem(record[f.name], prefix + f.name)
        if p:
            probs.append(p)
    if ordered and not probs:
        order = [f.name for f in fields if f.name in record]
        if list(record) != order:
            probs.append(f"{prefix[:-1] or 'record'}: fields out of the declared order")
    return probs


class Stream:
    """One output stream: ``<name>.jsonl`` (and ``.parquet`` where written), one record per line.

    ``fields`` are in output order; ``ordered`` streams write their keys in that order.
    """

    def __init__(self, name: str, doc: str, fields, *, ordered: bool = True, filename: str | None = None):
        self.name = name
        self.doc = doc
        self.fields = tuple(fields)
        self.ordered = ordered
        self.filename = filename or f"{name}.jsonl"
        self.names = tuple(f.name for f in self.fields)
        self.types = {f.name: f.type for f in self.fields}
        self.by_name = {f.name: f for f in self.fields}
        if len(self.by_name) != len(self.fields):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"stream {name}: field declared twice: {dup}")
        self._arrow = None

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, {len(self.fields)} fields)"

    def arrow_schema(self, names=None):
        """The Arrow schema (pyarrow imported here, not at module import); ``names`` picks a subset."""
        import pyarrow as pa
        if names is not None:
            return pa.schema([pa.field(n, self.types[n].arrow()) for n in names])
        if self._arrow is None:
            self._arrow = pa.schema([pa.field(f.name, f.type.arrow()) for f in self.fields])
        return self._arrow

    def arrow_row(self, record: dict) -> dict:
        """``record`` as pyarrow takes it for ``arrow_schema()`` (free-form JSON as text)."""
        return {f.name: f.type.arrow_value(record.get(f.name)) for f in self.fields}

    def problems(self, record: dict) -> list:
        """Every way ``record`` departs from the declaration: undeclared, missing or mistyped
        fields, keys out of order (empty list: the record fits)."""
        if not isinstance(record, dict):
            return [f"{self.name}: record is a {type(record).__name__}, not an object"]
        return _record_problems(record, self.fields, self.by_name, "", self.ordered)


def names(fields) -> tuple:
    return tuple(f.name for f in fields)


# ----------------------------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------------------------

TS = Field("ts", TIME, "time of the first packet of the connection or message")
UID = Field("uid", STRING, "the connection's unique id (as in flows.jsonl)")

#: The connection 5-tuple fields most logs carry after ``ts`` and ``uid`` (Zeek's ``id``).
CONN_ID = (
    Field("id.orig_h", ADDR, "originator's address (the side that opened the connection)"),
    Field("id.orig_p", PORT, "originator's port"),
    Field("id.resp_h", ADDR, "responder's address"),
    Field("id.resp_p", PORT, "responder's port"),
)

#: Where a record came from: every record about a connection carries it (drill-down, ``inspector carve``).
CAPTURE = Field("capture", STRING, "the input file holding the connection's first packet, as given to scan "
                                   "(live: the --ring file; null without one)")

_RECORDS = Struct(Field("customer", INT, "customer records"), Field("shipment", INT, "shipment records"))


# ----------------------------------------------------------------------------------------------
# flows.jsonl / flows.parquet
# ----------------------------------------------------------------------------------------------

#: Connection fields, written by the flow table (``inspector.flows``): Zeek's conn.log and more.
CONN_FLOW_FIELDS = (
    Field("ts", TIME, "time of the connection's first packet"),
    Field("uid", STRING, "unique connection id (Zeek style, e.g. CGtfVK4Bh9r2i7ByEg); other logs refer to it"),
    *CONN_ID,
    Field("proto", STRING, "transport: tcp, udp, icmp, or the IP protocol's name"),
    Field("service", STRING, "confirmed application protocols, comma-separated (Zeek names: ssl, http, dns...)"),
    Field("duration", INTERVAL, "last packet minus first packet; null on zero-length connections"),
    Field("orig_bytes", INT, "payload bytes sent by the originator (TCP: from sequence numbers)"),
    Field("resp_bytes", INT, "payload bytes sent by the responder"),
    Field("conn_state", STRING, "Zeek connection state (S0, SF, REJ, RSTO, OTH...)"),
    Field("local_orig", BOOL, "the originator is in the site's local_nets"),
    Field("local_resp", BOOL, "the responder is in the site's local_nets"),
    Field("missed_bytes", INT, "bytes the capture missed (TCP sequence gaps)"),
    Field("history", STRING, "Zeek history letters (ShADadFf...: upper case originator, lower case responder)"),
    Field("orig_pkts", INT, "packets sent by the originator"),
    Field("orig_ip_bytes", INT, "IP-level bytes sent by the originator"),
    Field("resp_pkts", INT, "packets sent by the responder"),
    Field("resp_ip_bytes", INT, "IP-level bytes sent by the responder"),
    Field("tunnel_parents", ListOf(STRING), "uids of the tunnel connections this one was carried in"),
    Field("ip_proto", INT, "IP protocol number"),
    Field("community_id", STRING, "Community ID v1 flow hash (seed 0)"),
    Field("vlan", INT, "outer 802.1Q VLAN id"),
    Field("inner_vlan", INT, "inner 802.1Q VLAN id (QinQ)"),
    Field("direction", STRING, "outbound (local to non-local), inbound, internal or external"),
    Field("orig_l2_bytes", INT, "whole-frame bytes sent by the originator (as Suricata and nDPI count)"),
    Field("resp_l2_bytes", INT, "whole-frame bytes sent by the responder"),
)

#: The destination, named and enriched at the end of the connection (the non-local side for inbound), and
#: what the protocol analyzers established about the connection (facts, ECH, the client's JA4T).
DEST_FLOW_FIELDS = (
    Field("dst_name", STRING, "name of the destination: TLS/QUIC SNI, HTTP Host, passive DNS, or the server "
                              "certificate when nothing else named it"),
    Field("dst_name_source", STRING, "where dst_name came from: sni, sni_outer (the public outer SNI of an "
                                     "Encrypted Client Hello: the real name is hidden), quic_sni, http_host, dns "
                                     "or x509 (the server certificate's name)"),
    Field("dst_country", STRING, "destination country (ISO 3166 alpha-2)"),
    Field("dst_asn", INT, "destination autonomous system number"),
    Field("dst_org", STRING, "destination organisation (AS or geo data owner)"),
    Field("dst_group", STRING, "destination group (cloud, carrier, partner... from the signatures)"),
    Field("dst_category", STRING, "destination category from the signatures"),
    Field("dst_allowed", BOOL, "the destination matches the site's allowed_destinations"),
    Field("ech", BOOL, "the client offered Encrypted Client Hello (TLS or QUIC): the name it asked for is "
                       "hidden (true, else null)"),
    Field("facts", ListOf(STRING), "facts the protocol analyzers established about the destination, sorted "
                                   "(tls.cert_name_mismatch, tls.cert_self_signed, tls.cert_expired, "
                                   "tls.cert_not_yet_valid, tls.ech); rules match them; null on inbound flows"),
    Field("ja4t", STRING, "JA4T fingerprint of the client's TCP SYN: window_options_MSS_window-scale (FoxIO "
                          "License 1.1); null when the SYN was not seen"),
)

#: What left the site on the connection (the content stage's per-flow summary).
CONTENT_FLOW_FIELDS = (
    Field("payload_type", STRING, "payload type with the most bytes (json, csv, text, tls-encrypted...)"),
    Field("payload_types", ListOf(STRING), "every payload type seen leaving, sorted"),
    Field("payload_encoding", STRING, "encodings and formats decoded to find data (base64, hex, url, json, "
                                        "lz4, zstd, snappy, protobuf, msgpack, cbor, grpc...), comma-separated"),
    Field("app_bytes_out", INT, "application bytes that left the site on this connection"),
    Field("data", MapOf(INT), "distinct identifiers per data class (email, phone, sscc...)"),
    Field("records", _RECORDS, "customer and shipment records counted"),
    Field("edm", MapOf(INT), "exact data matches: fingerprint file -> matching rows"),
)

FLOWS = Stream("flows", "one record per connection, written as connections end (Zeek conn.log names)",
               CONN_FLOW_FIELDS + (CAPTURE,) + DEST_FLOW_FIELDS + CONTENT_FLOW_FIELDS)


# ----------------------------------------------------------------------------------------------
# content.jsonl
# ----------------------------------------------------------------------------------------------

_EDI = Struct(
    Field("standard", STRING, "edifact or x12"),
    Field("type", STRING, "message type (IFTMIN, 856...)"),
    Field("ref", STRING, "message reference"),
    Field("sender", STRING, "interchange sender id"),
    Field("recipient", STRING, "interchange recipient id"),
)

CONTENT = Stream("content", "per connection that sent data out: payload types, data classes, records, "
                            "masked samples, salted hashes, EDI messages, EDM matches", (
    Field("ts", TIME, "time of the connection's first packet"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("proto", STRING, "the connection's transport (tcp, udp)"),
    Field("direction", STRING, "the connection's direction (outbound, inbound, internal, external)"),
    *CONTENT_FLOW_FIELDS[:6],
    Field("samples", MapOf(ListOf(STRING)), "up to 3 values per class, masked unless --show-raw"),
    Field("hashes", MapOf(ListOf(STRING)), "salted HMAC-SHA256 (128 bits, hex) of up to 1,000 values per class "
                                            "(the first in sorted order)"),
    Field("record_hashes", MapOf(ListOf(STRING)), "salted HMAC-SHA256 of each record's identity (the identifiers "
                                                  "it carries), up to 10,000 per kind (customer, shipment)"),
    Field("record_hashes_more", MapOf(INT), "distinct record identities per kind not listed in record_hashes"),
    Field("edi", ListOf(_EDI), "EDI messages found (at most 100)"),
    Field("edi_counts", MapOf(INT), "EDI messages per standard:type"),
    CONTENT_FLOW_FIELDS[6],
    Field("upload_apis", ListOf(STRING), "cloud upload APIs the connection called (alibaba-sls:PutLogs, "
                                         "alibaba-oss:PutObject, aws-s3:UploadPart, azure-blob:PutBlock...)"),
    CAPTURE,
))


# ----------------------------------------------------------------------------------------------
# files.jsonl (Zeek files.log; inspector/content/files.py)
# ----------------------------------------------------------------------------------------------

FILES = Stream("files", "one record per file a protocol carried: HTTP bodies, SMTP MIME entities, FTP "
                        "transfers (Zeek files.log)", (
    Field("ts", TIME, "time the file started"),
    Field("fuid", STRING, "file id (F + 17 characters), derived from uid, direction and ordinal: stable"),
    Field("uid", STRING, "the connection that carried the file"),
    Field("uids", ListOf(STRING), "every connection that carried it"),
    *CONN_ID,
    Field("source", STRING, "HTTP, SMTP or FTP_DATA"),
    Field("is_orig", BOOL, "the connection's originator sent the file"),
    Field("leaving", BOOL, "the sender is inside the site and the receiver outside"),
    Field("mime_type", STRING, "MIME type sniffed from the first bytes"),
    Field("filename", STRING, "name from Content-Disposition, Content-Type or the FTP argument (masked)"),
    Field("seen_bytes", INT, "file bytes seen"),
    Field("total_bytes", INT, "size announced by the protocol (Content-Length, FTP SIZE)"),
    Field("missing_bytes", INT, "bytes lost in reassembly gaps"),
    Field("md5", STRING, "MD5 of the whole file (null when part of it was not seen)"),
    Field("sha1", STRING, "SHA-1 of the whole file (null when part of it was not seen)"),
    Field("sha256", STRING, "SHA-256 of the whole file (null when part of it was not seen)"),
    Field("parent_fuid", STRING, "the archive or document this file is a member of (null for a file a "
                                 "protocol carried)"),
    Field("extracted", STRING, "name of the extracted copy in the --extract-files folder"),
    Field("extracted_cutoff", BOOL, "the extracted copy is incomplete (size cap or missing bytes)"),
    Field("extracted_size", INT, "bytes written to the extracted copy"),
    CAPTURE,
))


# ----------------------------------------------------------------------------------------------
# x509.jsonl (Zeek x509.log; inspector/protocols/tls.py)
# ----------------------------------------------------------------------------------------------

X509 = Stream("x509", "one record per certificate seen in a cleartext TLS (1.2 and earlier) Certificate "
                      "message, per connection (Zeek x509.log); tls.jsonl links them by fingerprint", (
    Field("ts", TIME, "time the Certificate message was seen"),
    Field("fingerprint", STRING, "SHA-256 of the DER certificate (hex)"),
    Field("certificate.version", INT, "X.509 version (3 for v3)"),
    Field("certificate.serial", STRING, "serial number, upper-case hex as OpenSSL prints it"),
    Field("certificate.subject", STRING, "subject (RFC 4514, OpenSSL attribute names)"),
    Field("certificate.issuer", STRING, "issuer (RFC 4514, OpenSSL attribute names)"),
    Field("certificate.not_valid_before", TIME, "start of validity"),
    Field("certificate.not_valid_after", TIME, "end of validity"),
    Field("certificate.key_alg", STRING, "public key algorithm (rsaEncryption, id-ecPublicKey...)"),
    Field("certificate.sig_alg", STRING, "signature algorithm (sha256WithRSAEncryption...)"),
    Field("certificate.key_type", STRING, "rsa, dsa, ecdsa, ed25519 or ed448"),
    Field("certificate.key_length", INT, "key size in bits (the curve's size for ecdsa)"),
    Field("san.dns", ListOf(STRING), "DNS names of the subjectAltName extension (at most 100)"),
    Field("san.ip", ListOf(ADDR), "IP addresses of the subjectAltName extension (at most 100)"),
    Field("basic_constraints.ca", BOOL, "basicConstraints says CA (null without the extension)"),
    Field("host_cert", BOOL, "the first certificate of its chain (the endpoint's own)"),
    Field("client_cert", BOOL, "sent by the client"),
    Field("ja4x", STRING, "JA4X fingerprint: issuer, subject and extension OIDs in certificate order "
                          "(FoxIO License 1.1)"),
    CAPTURE,))


# ----------------------------------------------------------------------------------------------
# weird.jsonl
# ----------------------------------------------------------------------------------------------

WEIRD = Stream("weird", "anomalies in captures and traffic (names in the weird catalogue)", (
    Field("ts", TIME, "packet time of the anomaly (null when none applies)"),
    Field("uid", STRING, "the connection's uid, or null"),
    Field("name", STRING, "<layer>.<snake_case> name (see the weird catalogue)"),
    Field("detail", STRING, "free text with the specifics"),
    Field("capture", STRING, "the input being read when the anomaly was seen (null: live without a ring)"),
))


# ----------------------------------------------------------------------------------------------
# alerts.jsonl (Suricata EVE style)
# ----------------------------------------------------------------------------------------------

_ALERT = Struct(
    Field("action", STRING, "always allowed (the inspector is passive)"),
    Field("gid", INT, "generator id (1)"),
    Field("signature_id", INT, "the rule's id"),
    Field("rev", INT, "the rule's revision"),
    Field("signature", STRING, "the rule's message"),
    Field("category", STRING, "the rule's category"),
    Field("severity", INT, "1 (critical) to 4 (low), Suricata's scale"),
    Field("metadata", MapOf(ListOf(STRING)), "severity_name, rule name, references"),
)

_DESTINATION = Struct(
    Field("name", STRING, "destination name"),
    Field("address", ADDR, "destination address"),
    Field("country", STRING, "country (ISO 3166 alpha-2)"),
    Field("asn", INT, "autonomous system number"),
    Field("org", STRING, "organisation"),
    Field("group", STRING, "group from the signatures"),
    Field("category", STRING, "category from the signatures"),
    Field("allowed", BOOL, "allow-listed by the site file"),
)

_ENDPOINT = Struct(
    Field("src_ip", ADDR, "the local side"),
    Field("dest_ip", ADDR, "the remote side"),
    Field("dest_port", PORT, "the remote side's port"),
    Field("proto", STRING, "transport, upper case"),
    Field("flows", INT, "covered flows between them"),
)

_WINDOW = Struct(
    Field("start", STRING, "window start, ISO 8601 (EVE layout)"),
    Field("seconds", INTERVAL, "window length"),
    Field("group", JSON, "the group_by keys and their values for this window"),
    Field("closed_early", BOOL, "the window was evicted before it ended (group limit)", optional=True),
)

ALERTS = Stream("alerts", "findings of the policy rules, Suricata EVE style (one object per alert)", (
    Field("timestamp", STRING, "time of the finding, ISO 8601 with microseconds (EVE layout)"),
    Field("event_type", STRING, "always alert"),
    Field("src_ip", ADDR, "the local side: the host data left from"),
    Field("src_port", PORT, "local side's port"),
    Field("dest_ip", ADDR, "the remote side"),
    Field("dest_port", PORT, "remote side's port"),
    Field("proto", STRING, "transport, upper case (TCP, UDP, ICMP)"),
    Field("app_proto", STRING, "application protocol, Suricata names (tls, http, dns...)"),
    Field("community_id", STRING, "Community ID of the most recent covered flow"),
    Field("uids", ListOf(STRING), "uids of the flows the finding covers"),
    Field("endpoints", ListOf(_ENDPOINT), "every endpoint pair the finding covers, most flows first"),
    Field("capture", STRING, "the input file of the first covered flow"),
    Field("captures", ListOf(STRING), "every input file the covered flows came from"),
    Field("alert", _ALERT, "signature id, message, category, severity, metadata"),
    Field("destination", _DESTINATION, "the destination: name, address, country, ASN, org, group"),
    Field("data", MapOf(INT), "distinct identifiers per class over the covered flows"),
    Field("records", _RECORDS, "customer and shipment records over the covered flows"),
    Field("bytes_out", INT, "bytes sent to the destination by the covered flows"),
    Field("bytes_in", INT, "bytes received from it"),
    Field("flows", INT, "number of covered flows"),
    Field("evidence", JSON, "masked samples, EDI counts, thresholds and detector figures (dns, beacon, icmp, "
                            "slow_drip, long_session)"),
    Field("score", FLOAT, "a detector's score, 0 to 1 (1 is a perfect beacon, tunnel...)", optional=True),
    Field("why", STRING, "the facts that made the finding, in words: a detector's score and its figures, "
                         "or the thresholds a rule met"),
    Field("uids_truncated", INT, "uids left out of uids (beyond 1000)", optional=True),
    Field("window", _WINDOW, "the window and group key of a windowed finding", optional=True),
    Field("site", STRING, "the site's name", optional=True),
    Field("alert_id", STRING, "the alert's id: 16 hex digits, the same for the same input and settings"),
    Field("incident_id", STRING, "the incident it belongs to (incidents.jsonl); null until incidents are built "
                                 "(live: as the alert fires)"),
    Field("incident_ids", ListOf(STRING), "every incident a site-wide aggregate sums flows of", optional=True),
))


# ----------------------------------------------------------------------------------------------
# incidents.jsonl (inspector/incidents)
# ----------------------------------------------------------------------------------------------

_INCIDENT_DESTINATION = Struct(
    Field("name", STRING, "destination name (SNI, HTTP host, DNS)"),
    Field("addresses", ListOf(ADDR), "its addresses in the incident's flows"),
    Field("org", STRING, "organisation"),
    Field("asn", INT, "autonomous system number"),
    Field("country", STRING, "country (ISO 3166 alpha-2)"),
    Field("group", STRING, "destination group from the signatures"),
    Field("category", STRING, "the group's category"),
)

INCIDENTS = Stream("incidents", "the alerts grouped into stories: one local host sending to one destination "
                                "organisation through one channel", (
    Field("incident_id", STRING, "16 hex digits: a hash of the story keys and the first flow's uid (stable)"),
    Field("first_ts", TIME, "start of the incident's first flow"),
    Field("last_ts", TIME, "end of its last flow"),
    Field("severity", INT, "the highest severity of its alerts, 1 (critical) to 4 (low)"),
    Field("title", STRING, "one sentence: who sent what to whom, how much, how, over how long"),
    Field("src_hosts", ListOf(ADDR), "the local hosts data left from"),
    Field("destinations", ListOf(_INCIDENT_DESTINATION), "where it went, most bytes first"),
    Field("signature_ids", ListOf(INT), "the rules of its alerts"),
    Field("alert_ids", ListOf(STRING), "its alerts (alerts.jsonl alert_id)"),
    Field("uids", ListOf(STRING), "every flow of the incident, in time order"),
    Field("flows", INT, "number of flows"),
    Field("bytes_out", INT, "bytes the local side sent in them"),
    Field("bytes_in", INT, "bytes it received"),
    Field("records", _RECORDS, "DISTINCT customer and shipment records over the incident (by salted hash)"),
    Field("data", MapOf(INT), "DISTINCT identifiers per class over the incident (by salted hash)"),
    Field("payload_types", ListOf(STRING), "payload types of its flows"),
    Field("app_protos", ListOf(STRING), "application protocols (Suricata names), the alerts' first"),
    Field("captures", ListOf(STRING), "the capture files its packets came from, as given"),
    Field("evidence", JSON, "masked samples and the detectors' figures; never raw values"),
    Field("why", ListOf(STRING), "the facts that made it an incident, in words"),
    Field("next_steps", ListOf(STRING), "inspector carve / explain / evidence commands for it"),
))


# ----------------------------------------------------------------------------------------------
# stats.json (one object)
# ----------------------------------------------------------------------------------------------

STATS = Stream("stats", "run figures, one JSON object", (
    Field("packets_read", INT, "packets read from all inputs"),
    Field("bytes_read", INT, "captured bytes read"),
    Field("outcomes", MapOf(INT), "packets per decode outcome (sums to packets_read)"),
    Field("flows", INT, "flow records written"),
    Field("weirds", MapOf(INT), "weird counts per name (all of them; weird.jsonl keeps 1000 per name)"),
    Field("flows_evicted", INT, "flows ended early because the flow table was full"),
    Field("files", ListOf(Struct(Field("path", STRING, "input path as given"),
                                 Field("format", STRING, "capture format (pcap, pcapng...)"),
                                 Field("packets_read", INT, "packets read from this input"),
                                 Field("bytes_read", INT, "bytes read from this input"))),
          "per-input figures"),
    Field("inputs_failed", ListOf(STRING), "one line per input that could not be read"),
    Field("site", STRING, "the site's name"),
    Field("alerts", INT, "alerts raised"),
    Field("incidents", INT, "incidents the alerts were grouped into"),
    Field("logs", MapOf(INT), "records per protocol log and content"),
    Field("exclusions", ListOf(Struct(
              Field("entry", STRING, "the site file and line of the entry"),
              Field("owner", STRING, "who answers for it"),
              Field("reason", STRING, "why it exists"),
              Field("expires", STRING, "its expiry date (YYYY-MM-DD, through the end of that day UTC)"),
              Field("excused", INT, "flows (and DNS queries) it kept from the policy"),
              Field("after_expiry", INT, "flows it covers that came after its expiry (checked, not excused)"))),
          "the site file's exclusions and what they did", optional=True),
    Field("extracted", Struct(*(Field(k, INT, doc) for k, doc in (
              ("files", "files extracted"), ("bytes", "bytes written"), ("partial", "files written cut short"),
              ("duplicates", "files already present (same content)"), ("skipped_cap", "files over the caps"),
              ("errors", "files that could not be written"))),
          Field("directory", STRING, "the --extract-files folder"),
          Field("error", STRING, "why extraction stopped", optional=True)),
          "--extract-files totals", optional=True),
    Field("stopped_by", STRING, "SIGINT or SIGTERM when the scan was interrupted (what was processed "
                                "is written)", optional=True),
), ordered=False, filename="stats.json")

def core_streams() -> tuple:
    """The streams a scan may write besides the protocol logs: every ``Stream`` declared in this
    module with a ``.jsonl`` file, in declaration order.  Adding a stream (incidents, files...) is
    one ``Stream(...)`` declaration here."""
    return tuple(v for v in list(globals().values()) if isinstance(v, Stream) and v.filename.endswith(".jsonl"))


# ----------------------------------------------------------------------------------------------
# the registry
# ----------------------------------------------------------------------------------------------

_STREAMS: dict | None = None


def protocol_streams() -> dict:
    """Log name -> ``Stream`` from every protocol module's ``LOG_SCHEMA`` (registry order).
    Modules sharing a log (quic and gquic) share one declaration object; each log gains ``capture``."""
    from .. import protocols
    out: dict = {}
    seen: dict = {}        # log name -> the module's own declaration
    for mod in protocols.load():
        decl = getattr(mod, "LOG_SCHEMA", None)
        log = getattr(mod, "LOG", None)
        if decl is None:
            if log is not None:
                raise ValueError(f"{mod.__name__}: LOG = {log!r} but no LOG_SCHEMA")
            continue
        if decl.name != log:
            raise ValueError(f"{mod.__name__}: LOG_SCHEMA is {decl.name!r}, LOG is {log!r}")
        have = seen.get(decl.name)
        if have is not None and have is not decl:
            raise ValueError(f"{mod.__name__}: log {decl.name!r} declared twice")
        if have is None:
            seen[decl.name] = decl
            out[decl.name] = _with_capture(decl)
    return out


def _with_capture(decl: Stream) -> Stream:
    """A protocol log's declaration plus ``capture``, which the application layer adds to every
    record it emits (so a protocol module never declares it)."""
    return Stream(decl.name, decl.doc, decl.fields + (CAPTURE,), ordered=decl.ordered, filename=decl.filename)


def streams() -> dict:
    """Every declared stream: name -> ``Stream`` (core streams, then protocol logs)."""
    global _STREAMS
    if _STREAMS is None:
        found = {s.name: s for s in core_streams()}
        for name, s in protocol_streams().items():
            if name in found:
                raise ValueError(f"protocol log {name!r} clashes with a core stream")
            found[name] = s
        _STREAMS = found
    return _STREAMS


def stream(name: str) -> Stream:
    """The declaration of ``<name>.jsonl`` (KeyError when undeclared)."""
    return streams()[name]


# ----------------------------------------------------------------------------------------------
# README tables
# ----------------------------------------------------------------------------------------------

BEGIN = "<!-- BEGIN generated: python -m inspector.outputs.schema --markdown -->"
END = "<!-- END generated -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(fields, prefix: str = "") -> list:
    rows = []
    for f in fields:
        t = f.type
        label = "object" if isinstance(t, Struct) else ("list<object>" if isinstance(t, ListOf) and
                                                        isinstance(t.item, Struct) else t.label)
        rows.append(f"| `{prefix}{f.name}` | {label} | {_cell(f.doc)}{' (may be absent)' if f.optional else ''} |")
        inner = t if isinstance(t, Struct) else (t.item if isinstance(t, ListOf) and isinstance(t.item, Struct)
                                                 else None)
        if inner is not None:
            rows.extend(_table(inner.fields, prefix=f"{prefix}{f.name}."))
    return rows


def markdown() -> str:
    """The README's field tables, one per stream (generated; the README test compares them)."""
    from .weirds import markdown as weird_markdown
    out = [BEGIN, ""]
    for s in list(streams().values()) + [STATS]:
        out.append(f"#### `{s.filename}`")
        out.append("")
        out.append(s.doc[0].upper() + s.doc[1:] + ".")
        out.append("")
        out.append("| field | type | meaning |")
        out.append("|---|---|---|")
        out.extend(_table(s.fields))
        out.append("")
    out.append("#### Weird names")
    out.append("")
    out.extend(weird_markdown())
    out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def readme_section(text: str) -> str | None:
    """The generated part of a README (between BEGIN and END, inclusive), or None."""
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", text, re.S)
    return m.group(0) if m else None


def _main(argv=None) -> int:
    import argparse
    import sys
    p = argparse.ArgumentParser(prog="python -m inspector.outputs.schema",
                                description="Print or update the output field tables generated from the schema.")
    p.add_argument("--markdown", action="store_true", help="print the tables (Markdown)")
    p.add_argument("--update", metavar="README", help="rewrite the generated section of this file in place")
    args = p.parse_args(argv)
    text = markdown()
    if args.update:
        with open(args.update, encoding="utf-8") as fh:
            old = fh.read()
        section = readme_section(old)
        if section is None:
            print(f"{args.update}: no generated section ({BEGIN})", file=sys.stderr)
            return 2
        with open(args.update, "w", encoding="utf-8") as fh:
            fh.write(old.replace(section, text))
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    # Run as a script, this file is ``__main__``: use the package's copy so that the protocol
    # modules' declarations and these share one set of classes.
    from inspector.outputs import schema as _schema
    raise SystemExit(_schema._main())
