"""Tests for inspector.site (site file loader and fast membership) and
inspector.errors.ConfigError."""

import dataclasses
import ipaddress
import pickle
import textwrap

import numpy as np
import pytest

from inspector.errors import ConfigError
from inspector.site import DEFAULT_LOCAL_NETS, Site, load_site, loads_site, parse_asn

GOOD = """\
# warehouse DC north
site: dc-north
local_nets: [172.20.0.0/16, "fd00:20::/48", 10.9.9.9, "2001:db8:1::5"]
roles:
  172.20.0.0/16: dc
  172.20.1.0/24: wms
  172.20.1.128/25: wms-db
  172.20.50.0/24: scanner
  "fd00:20::/48": v6-dc
  "fd00:20:0:1::/64": v6-wms
allowed_destinations:
  - api.partner.example
  - "*.UPS.com"
  - .fedex.com.
  - 192.0.2.0/24
  - 198.51.100.7
  - "2001:db8:ffff::/48"
  - AS64500
  - as64501
  - 64502
  - AS1.10
"""


def write(tmp_path, text, name="site.yaml"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def ip2int(s):
    return int(ipaddress.IPv4Address(s))


# ---------------------------------------------------------------- good file

def test_good_file(tmp_path):
    p = write(tmp_path, GOOD)
    s = load_site(p)
    net = ipaddress.ip_network
    assert s.name == "dc-north"
    assert s.source == str(p)
    assert s.local_nets == (net("172.20.0.0/16"), net("fd00:20::/48"),
                            net("10.9.9.9/32"), net("2001:db8:1::5/128"))
    assert s.roles[1] == (net("172.20.1.0/24"), "wms")
    assert len(s.roles) == 6
    assert s.allowed_domains == ("api.partner.example", "ups.com", "fedex.com")
    assert s.allowed_nets == (net("192.0.2.0/24"), net("198.51.100.7/32"),
                              net("2001:db8:ffff::/48"))
    assert s.allowed_asns == (64500, 64501, 64502, 65546)

    assert s.is_local("172.20.3.4")
    assert s.is_local("10.9.9.9")
    assert not s.is_local("10.9.9.8")
    assert s.is_local("fd00:20::1")
    assert s.is_local("2001:db8:1::5")
    assert not s.is_local("2001:db8:1::6")
    assert not s.is_local("192.168.1.1")          # defaults replaced, not extended


def test_to_dict(tmp_path):
    s = load_site(write(tmp_path, GOOD))
    d = s.to_dict()
    assert d["name"] == "dc-north"
    assert d["source"] == str(tmp_path / "site.yaml")
    assert d["local_nets"] == ["172.20.0.0/16", "fd00:20::/48", "10.9.9.9/32", "2001:db8:1::5/128"]
    assert d["roles"]["172.20.1.128/25"] == "wms-db"
    assert d["allowed_domains"] == ["api.partner.example", "ups.com", "fedex.com"]
    assert d["allowed_nets"] == ["192.0.2.0/24", "198.51.100.7/32", "2001:db8:ffff::/48"]
    assert d["allowed_asns"] == [64500, 64501, 64502, 65546]
    import json
    json.dumps(d)                                  # JSON-serialisable


# ----------------------------------------------------------------- defaults

EXPECTED_DEFAULTS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
                     "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10"]


def test_default_site():
    s = Site.default()
    assert s.name == "site"
    assert [str(n) for n in s.local_nets] == EXPECTED_DEFAULTS
    assert s.local_nets == DEFAULT_LOCAL_NETS
    assert s.roles == () and s.allowed_domains == () and s.allowed_nets == ()
    assert s.allowed_asns == ()
    for a in ("10.1.2.3", "172.31.255.255", "192.168.0.1", "127.0.0.1", "169.254.9.9",
              "::1", "fe80::1", "fd12:3456::1", "fc00::1", "::ffff:10.1.1.1"):
        assert s.is_local(a), a
    for a in ("172.32.0.1", "100.64.0.1", "8.8.8.8", "2001:db8::1", "fec0::1",
              "224.0.0.1", "not-an-ip", ""):
        assert not s.is_local(a), a
    assert s.role("10.1.1.1") is None
    assert not s.is_allowed("example.com", "1.1.1.1", 15169)
    assert not s.is_allowed()


@pytest.mark.parametrize("text", ["", "# nothing here\n", "---\n",
                                  "site:\nlocal_nets:\nroles:\nallowed_destinations:\n"])
def test_empty_and_null_keys_give_defaults(tmp_path, text):
    s = load_site(write(tmp_path, text))
    assert s == Site.default()


def test_empty_local_nets_means_nothing_local(tmp_path):
    s = load_site(write(tmp_path, "local_nets: []\n"))
    assert s.local_nets == ()
    assert not s.is_local("10.0.0.1")
    assert not s.is_local_v4(np.array([ip2int("10.0.0.1")], dtype=np.uint32)).any()


def test_site_is_immutable_and_replace_rebuilds_index():
    s = Site.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "x"                                        # type: ignore[misc]
    s2 = dataclasses.replace(s, local_nets=["100.64.0.0/10"])
    assert s2.is_local("100.64.1.1") and not s2.is_local("10.0.0.1")
    assert s.is_local("10.0.0.1")


def test_programmatic_construction():
    s = Site(name="x", local_nets=["10.0.0.0/8"], roles={"10.1.0.0/16": "wms"},
             allowed_domains=["*.Example.COM."], allowed_nets=["192.0.2.1"],
             allowed_asns=["AS64500", 64501])
    assert s.roles == ((ipaddress.ip_network("10.1.0.0/16"), "wms"),)
    assert s.allowed_domains == ("example.com",)
    assert s.allowed_nets == (ipaddress.ip_network("192.0.2.1/32"),)
    assert s.allowed_asns == (64500, 64501)
    with pytest.raises(ValueError):
        Site(local_nets=["10.0.0.0/33"])
    with pytest.raises(ValueError):
        Site(roles={"10.0.0.0/8": " "})


# ------------------------------------------------------------- error cases

ERROR_CASES = [
    # (file text, line, message)
    ("site: dc\nlocal_net: [10.0.0.0/8]\n", 2,
     "unknown top-level key 'local_net' (did you mean 'local_nets'?)"),
    ("site: dc\nfoo: 1\n", 2,
     "unknown top-level key 'foo'; expected one of: site, local_nets, roles, allowed_destinations, "
     "exclusions"),
    ("- 10.0.0.0/8\n", 1, "site file must be a mapping of keys to values, got a list"),
    ("site: [a, b]\n", 1, "'site' must be a string, got a list"),
    ("site: ''\n", 1, "'site' must not be empty"),
    ("site: x\nsite: y\n", 2, "duplicate key 'site' (first defined on line 1)"),
    ("local_nets: 10.0.0.0/8\n", 1, "'local_nets' must be a list of CIDRs, got a string"),
    ("local_nets:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n", 3,
     "invalid CIDR '10.0.0.0/33' in 'local_nets': '33' is not a valid netmask"),
    ("local_nets:\n  - 10.0.0.0/8\n\n  - 172.20.1.0/16\n", 4,
     "invalid CIDR '172.20.1.0/16' in 'local_nets': host bits set (did you mean 172.20.0.0/16?)"),
    ("local_nets: [300.1.2.3]\n", 1,
     "invalid CIDR '300.1.2.3' in 'local_nets': Octet 300 (> 255) not permitted in '300.1.2.3'"),
    ("local_nets:\n  - {a: b}\n", 2, "'local_nets' entries must be CIDR strings, got a mapping"),
    ("local_nets:\n  -\n", 2, "empty entry in 'local_nets'"),
    ("roles: [10.0.0.0/8]\n", 1, "'roles' must be a mapping of CIDR to role name, got a list"),
    ("roles:\n  10.0.0.0/8: dc\n  10.1.0.0/16: ''\n", 3, "empty role name for 10.1.0.0/16"),
    ("roles:\n  10.0.0.0/8: dc\n  10.1.0.0/16:\n", 3, "empty role name for 10.1.0.0/16"),
    ("roles:\n  10.0.0.0/8: [a]\n", 2, "role name for 10.0.0.0/8 must be a string, got a list"),
    ("roles:\n  10.0.0.0/8: dc\n  10.0.0.0/8: wms\n", 3,
     "duplicate role network 10.0.0.0/8 (first defined on line 2)"),
    ("roles:\n  10.0.0.0/8: dc\n  10.256.0.0/16: wms\n", 3,
     "invalid CIDR '10.256.0.0/16' in 'roles': Octet 256 (> 255) not permitted in '10.256.0.0'"),
    ("allowed_destinations: api.example\n", 1, "'allowed_destinations' must be a list, got a string"),
    ("allowed_destinations:\n  - ok.example\n  - AS0\n", 3,
     "invalid AS number 'AS0' in 'allowed_destinations' (must be AS1..AS4294967295)"),
    ("allowed_destinations:\n  - AS4294967296\n", 2,
     "invalid AS number 'AS4294967296' in 'allowed_destinations' (must be AS1..AS4294967295)"),
    ("allowed_destinations:\n  - 0\n", 2,
     "invalid AS number '0' in 'allowed_destinations' (must be AS1..AS4294967295)"),
    ("allowed_destinations:\n  - foo..example\n", 2,
     "invalid domain 'foo..example' in 'allowed_destinations'"),
    ("allowed_destinations:\n  - 192.0.2.0/33\n", 2,
     "invalid CIDR '192.0.2.0/33' in 'allowed_destinations': '33' is not a valid netmask"),
    ("allowed_destinations:\n  - true\n", 2,
     "'allowed_destinations' entries must be domain suffixes, CIDRs or AS numbers, got a boolean"),
    # YAML syntax errors: line of problem_mark
    ("site: dc\nroles:\n  10.0.0.0/8: dc\n   bad: indent\n", 4,
     "YAML syntax error: mapping values are not allowed here"),
    ("site: dc\nlocal_nets: [10.0.0.0/8\n", 3,
     "YAML syntax error: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"),
    ("site: dc\nlocal_nets: \"unterminated\n", 3,
     "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar)"),
    ("site: dc\n---\nsite: other\n", 2,
     "YAML syntax error: but found another document (expected a single document in the stream)"),
    ("site: dc\nlocal_nets: \x01\n", 2, "YAML syntax error: special characters are not allowed"),
    (b"site: dc\nroles: {10.0.0.0/8: \xff}\n", 2, "file is not valid UTF-8"),
]


@pytest.mark.parametrize("text,line,message", ERROR_CASES,
                         ids=[c[2][:50] for c in ERROR_CASES])
def test_error_names_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_site(p)
    err = ei.value
    assert str(err) == f"{p}:{line}: {message}"
    assert (err.path, err.line, err.message) == (str(p), line, message)
    assert "\n" not in str(err)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as ei:
        load_site(p)
    assert str(ei.value) == f"{p}: cannot read site file: No such file or directory"
    assert ei.value.line is None


def test_unreadable_path_is_directory(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_site(tmp_path)
    assert str(ei.value) == f"{tmp_path}: cannot read site file: Is a directory"


def test_loads_site_uses_given_path():
    with pytest.raises(ConfigError) as ei:
        loads_site("bogus: 1\n", path="inline.yaml")
    assert str(ei.value).startswith("inline.yaml:1: unknown top-level key 'bogus'")


def test_config_error_shape_and_pickle():
    e = ConfigError("a/b.yaml", 7, "bad\nthing  here")
    assert str(e) == "a/b.yaml:7: bad thing here"
    assert str(ConfigError("a/b.yaml", None, "gone")) == "a/b.yaml: gone"
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.line, e2.message) == ("a/b.yaml", 7, "bad thing here")
    assert isinstance(e, Exception)


# ------------------------------------------------------- allowed destinations

def test_domain_suffix_matching_on_label_boundaries():
    s = Site(allowed_domains=["ups.com", "*.partner.example", ".Corp.Example."])
    assert s.is_allowed("ups.com")
    assert s.is_allowed("api.ups.com")
    assert s.is_allowed("a.b.c.UPS.COM.")
    assert not s.is_allowed("notups.com")
    assert not s.is_allowed("ups.com.evil.example")
    assert not s.is_allowed("ups.co")
    assert not s.is_allowed("com")
    assert s.is_allowed("partner.example")          # "*." strips to the suffix itself
    assert s.is_allowed("x.partner.example")
    assert s.is_allowed("host.corp.example")
    assert not s.is_allowed("")
    assert not s.is_allowed(None)


def test_is_allowed_by_addr_and_asn(tmp_path):
    s = load_site(write(tmp_path, GOOD))
    assert s.is_allowed(None, "192.0.2.200", None)
    assert s.is_allowed(addr="198.51.100.7")
    assert not s.is_allowed(addr="198.51.100.8")
    assert s.is_allowed(addr="2001:db8:ffff:1::1")
    assert not s.is_allowed(addr="not an address")
    assert s.is_allowed(asn=64500) and s.is_allowed(asn="AS64501") and s.is_allowed(asn=65546)
    assert not s.is_allowed(asn=64503)
    # any one attribute suffices
    assert s.is_allowed("evil.example", "8.8.8.8", 64502)
    assert not s.is_allowed("evil.example", "8.8.8.8", 15169)


@pytest.mark.parametrize("value,expected", [
    (64500, 64500), ("64500", 64500), ("AS64500", 64500), ("as64500", 64500),
    ("AS1.10", 65546), ("AS4294967295", 4294967295)])
def test_parse_asn(value, expected):
    assert parse_asn(value) == expected


@pytest.mark.parametrize("value", [0, -1, "AS0", "AS4294967296", "ASX", "AS1.70000", True, ""])
def test_parse_asn_invalid(value):
    with pytest.raises(ValueError):
        parse_asn(value)


# ---------------------------------------------------------------------- roles

def test_role_longest_prefix(tmp_path):
    s = load_site(write(tmp_path, GOOD))
    assert s.role("172.20.1.200") == "wms-db"
    assert s.role("172.20.1.5") == "wms"
    assert s.role("172.20.50.9") == "scanner"
    assert s.role("172.20.77.1") == "dc"
    assert s.role("8.8.8.8") is None
    assert s.role("fd00:20:0:1::9") == "v6-wms"
    assert s.role("fd00:20:0:2::9") == "v6-dc"
    assert s.role("::ffff:172.20.1.5") == "wms"
    assert s.role("garbage") is None
    assert s.role(ipaddress.ip_address("172.20.1.129")) == "wms-db"


def test_role_order_independent():
    roles = [("10.0.0.0/8", "a"), ("10.1.0.0/16", "b"), ("10.1.2.0/24", "c"),
             ("10.1.2.3/32", "d")]
    for order in (roles, roles[::-1]):
        s = Site(roles=order)
        assert [s.role(x) for x in ("10.9.9.9", "10.1.9.9", "10.1.2.9", "10.1.2.3", "11.0.0.1")] \
            == ["a", "b", "c", "d", None]


# ----------------------------------------------------- vectorised membership

def _random_v4(rng, nets, n):
    """Random addresses: uniform, plus a lot inside/at the edges of ``nets``."""
    parts = [rng.integers(0, 2**32, n, dtype=np.uint64)]
    for net in nets:
        if net.version != 4:
            continue
        lo, hi = int(net.network_address), int(net.broadcast_address)
        edges = [lo, hi, max(lo - 1, 0), min(hi + 1, 2**32 - 1)]
        parts.append(np.array(edges, dtype=np.uint64))
        parts.append(rng.integers(lo, hi + 1, 50, dtype=np.uint64))
    return np.concatenate(parts).astype(np.uint32)


SITES = {
    "default": Site.default(),
    "custom": Site(local_nets=["172.20.0.0/16", "10.9.9.9", "fd00::/8", "192.0.2.128/25"]),
    "everything": Site(local_nets=["0.0.0.0/0"]),
    "many-nets": Site(local_nets=[f"10.{i}.{i}.0/24" for i in range(0, 250, 3)]
                      + ["255.255.255.255/32", "0.0.0.0/32"]),
    "none": Site(local_nets=[]),
}


@pytest.mark.parametrize("name", sorted(SITES))
def test_is_local_v4_matches_scalar(name):
    s = SITES[name]
    rng = np.random.default_rng(12345)
    arr = _random_v4(rng, s.local_nets, 3000)
    vec = s.is_local_v4(arr)
    assert vec.dtype == bool and vec.shape == arr.shape
    scalar = np.array([s.is_local(str(ipaddress.IPv4Address(int(a)))) for a in arr])
    np.testing.assert_array_equal(vec, scalar)
    if name not in ("none",):
        assert vec.any()
    if name not in ("everything",):
        assert not vec.all()


def test_is_local_v4_shapes_and_dtypes():
    s = Site.default()
    addrs = ["10.0.0.1", "8.8.8.8", "192.168.9.9", "172.15.255.255"]
    ints = [ip2int(a) for a in addrs]
    expected = [True, False, True, False]
    assert s.is_local_v4(np.array(ints, dtype=np.uint32)).tolist() == expected
    assert s.is_local_v4(np.array(ints, dtype=np.int64)).tolist() == expected
    assert s.is_local_v4(ints).tolist() == expected
    assert s.is_local_v4(np.array(ints, dtype=np.uint32).reshape(2, 2)).shape == (2, 2)
    assert s.is_local_v4(np.array([], dtype=np.uint32)).shape == (0,)


@pytest.mark.parametrize("name", ["default", "custom"])
def test_roles_v4_matches_scalar(name, tmp_path):
    s = load_site(write(tmp_path, GOOD)) if name == "custom" else Site(
        roles={"10.0.0.0/8": "a", "10.1.0.0/16": "b", "10.1.1.0/24": "c"})
    rng = np.random.default_rng(7)
    arr = _random_v4(rng, [n for n, _ in s.roles], 2000)
    vec = s.roles_v4(arr)
    scalar = [s.role(str(ipaddress.IPv4Address(int(a)))) for a in arr]
    assert vec.tolist() == scalar


def test_is_local_accepts_objects_and_bytes():
    s = Site.default()
    assert s.is_local(ipaddress.ip_address("10.1.1.1"))
    assert s.is_local(ipaddress.ip_address("fe80::1"))
    assert s.is_local(bytes([192, 168, 1, 1]))
    assert not s.is_local(bytes([8, 8, 8, 8]))
    assert s.is_local("fe80::1%eth0")
    assert not s.is_local(None)                      # type: ignore[arg-type]


def test_is_local_cache_is_bounded(monkeypatch):
    import inspector.site as site_mod
    monkeypatch.setattr(site_mod, "_CACHE_MAX", 10)
    s = Site.default()
    for i in range(100):
        assert s.is_local(f"10.0.0.{i}")
    assert len(s._local_cache) <= 10
