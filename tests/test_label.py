"""The registered domain and the destination label: one definition, the same answer everywhere."""
from __future__ import annotations

import pytest

from inspector.batch.worker import destination_org
from inspector.domain import is_address, registered_domain
from inspector.enrich.label import LABEL_KINDS, destination_label, flow_destination_label, remote_address
from inspector.policy.view import FlowView, group_value
from inspector.report.summary import Aggregates

pytest.importorskip("publicsuffixlist")


@pytest.mark.parametrize("name,want", [
    ("a.b.example.co.uk", "example.co.uk"),
    ("WWW.Example.COM.", "example.com"),
    ("  api.example.com ", "example.com"),
    ("example.com", "example.com"),
    ("co.uk", None),                 # a public suffix has no registered domain
    ("com", None),
    ("192.0.2.7", None),             # an address is not a name
    ("2001:db8::1", None),
    ("", None), (".", None), (None, None), (42, None), (["x.com"], None), (b"example.com", None),
    ("tenant.ngrok.io", "tenant.ngrok.io"),       # a private suffix counts by default
])
def test_registered_domain(name, want):
    assert registered_domain(name) == want


def test_registered_domain_icann_only():
    assert registered_domain("abc.ngrok.io", icann_only=True) == "ngrok.io"
    assert registered_domain("x.bucket.s3.amazonaws.com", icann_only=True) == "amazonaws.com"
    assert registered_domain("x.bucket.s3.amazonaws.com") != "amazonaws.com"


def test_is_address():
    assert is_address("10.1.2.3") and is_address("fe80::1") and not is_address("a10.example")


@pytest.mark.parametrize("fields,want", [
    (dict(org="Example GmbH", group="g", name="a.example.com", asn=64500, address="203.0.113.5"),
     ("Example GmbH", "org")),
    (dict(group="alibaba-cloud", name="a.example.com", asn=64500, address="203.0.113.5"),
     ("alibaba-cloud", "group")),
    (dict(name="upload.files.example.co.uk", asn=64500, address="203.0.113.5"), ("example.co.uk", "domain")),
    (dict(name="203.0.113.5", asn=64501, address="203.0.113.5"), ("AS64501", "asn")),   # a name that is an address
    (dict(name="co.uk", address="203.0.113.5"), ("203.0.113.5", "address")),
    (dict(address="2001:db8::5"), ("2001:db8::5", "address")),
    (dict(), ("unknown", "unknown")),
])
def test_destination_label(fields, want):
    assert destination_label(**fields) == want
    assert want[1] in LABEL_KINDS


def _flow(**kw) -> dict:
    f = {"ts": 1764000000.0, "uid": "C1", "id.orig_h": "172.20.1.10", "id.orig_p": 40000,
         "id.resp_h": "203.0.113.5", "id.resp_p": 443, "proto": "tcp", "duration": 1.0, "orig_bytes": 1000,
         "resp_bytes": 100, "direction": "outbound", "dst_name": "api.example.com", "dst_country": "DE",
         "dst_asn": None, "dst_org": None, "dst_group": None, "dst_category": None, "dst_allowed": False}
    f.update(kw)
    return f


FLOWS = [
    _flow(dst_org="Example GmbH"),
    _flow(dst_group="alibaba-cloud"),
    _flow(dst_name="x.y.example.co.uk"),
    _flow(dst_name=None, dst_asn=64501),
    _flow(dst_name=None),
    _flow(dst_name="10.9.8.7"),
    _flow(direction="inbound", dst_name=None, **{"id.orig_h": "198.51.100.7", "id.resp_h": "172.20.1.11"}),
]


@pytest.mark.parametrize("rec", FLOWS)
def test_alerts_and_both_reports_agree(rec):
    """Policy (``group_by: [dst_org]``), the HTML report's organisation table and the nightly batch
    report's ``dst_org`` column give the same label to the same flow."""
    label, _ = flow_destination_label(rec)
    assert group_value(FlowView(rec), "dst_org") == label
    assert destination_org(rec) == label
    agg = Aggregates()
    agg.add([rec])
    assert [org for org, _ in agg.top_orgs(5)] == [label]


def test_remote_address_is_the_far_side():
    assert remote_address(FLOWS[0]) == "203.0.113.5"
    assert remote_address(FLOWS[-1]) == "198.51.100.7"
    assert destination_org(_flow(direction="internal")) == ""
