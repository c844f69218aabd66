"""Tests for inspector.enrich: destination groups (loader, validation,
precedence), GeoDB (bundled geoip2fast data, MaxMind DB and range-CSV
sources) and the Enricher."""

import ipaddress
import os
import random
import textwrap

import numpy as np
import pytest

from inspector.enrich import DESTINATION_FIELDS, Enricher
from inspector.enrich.geo import GeoDB, GeoInfo
from inspector.enrich.groups import (CATEGORIES, Group, Groups, check,
                                     default_groups_dir, load_groups, loads_groups)
from inspector.enrich.ranges import flatten_most_specific as _flatten
from inspector.errors import ConfigError
from inspector.site import Site

SHIPPED = default_groups_dir()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def ip2int(s):
    return int(ipaddress.IPv4Address(s))


# ------------------------------------------------------------ group validation

GROUP_ERRORS = [
    ("""\
     - group: ups
       category: carrier
       domain: [ups.com]
     """, 3, "unknown key 'domain' (did you mean 'domains'?)"),
    ("""\
     - group: ups
       category: carrier
       vendor: brown-corp
     """, 3, "unknown key 'vendor'; expected one of: group, name, category, country, "
             "domains, cidrs, asns, cert_issuers, cert_subjects, references, notes"),
    ("""\
     - group: ali
       category: foreign-cloud
       cidrs:
         - 47.74.0.0/15
         - 47.74.0.0/14
     """, 5, "invalid CIDR '47.74.0.0/14' in group 'ali': host bits set "
             "(did you mean 47.72.0.0/14?)"),
    ("""\
     - group: ali
       category: foreign-cloud
       cidrs: [300.1.2.0/24]
     """, 3, "invalid CIDR '300.1.2.0/24' in group 'ali': Octet 300 (> 255) not permitted in "
             "'300.1.2.0'"),
    ("""\
     - group: ali
       category: foreign-cloud
       asns:
         - 45102
         - AS99999999999
     """, 5, "invalid AS number 'AS99999999999' in group 'ali' (must be AS1..AS4294967295)"),
    ("""\
     - group: ali
       category: foreign-cloud
       asns: [AS-ALIBABA]
     """, 3, "invalid AS number 'AS-ALIBABA' in group 'ali' (must be AS1..AS4294967295)"),
    ("""\
     - group: ali
       category: foreign-cloud
       asns: [yes]
     """, 3, "'asns' entries must be AS numbers like 45102 or AS45102, got a boolean"),
    ("""\
     - group: ups
       category: carrier
       domains:
         - ups.com
         - ups..com
     """, 5, "invalid domain 'ups..com' in group 'ups'"),
    ("""\
     - group: ups
       category: carrier
       domains: ["https://ups.com/"]
     """, 3, "invalid domain 'https://ups.com/' in group 'ups'"),
    ("""\
     - group: ups
       category: carriers
       domains: [ups.com]
     """, 2, "unknown category 'carriers' (did you mean 'carrier'?)"),
    ("""\
     - group: ups
       category: pirate
       domains: [ups.com]
     """, 2, "unknown category 'pirate'; expected one of: " + ", ".join(CATEGORIES)),
    ("""\
     - group: ups
       domains: [ups.com]
     """, 1, "group 'ups' has no 'category'; expected one of: " + ", ".join(CATEGORIES)),
    ("""\
     - name: UPS
       category: carrier
       domains: [ups.com]
     """, 1, "group without a 'group' id"),
    ("""\
     - group: UPS Inc
       category: carrier
       domains: [ups.com]
     """, 1, "invalid group id 'UPS Inc': use lower-case letters, digits and '-' "
             "(like 'alibaba-cloud')"),
    ("""\
     - group: ups
       category: carrier
     """, 1, "group 'ups' has no domains, cidrs, asns, cert_issuers or cert_subjects"),
    ("""\
     - group: ups
       category: carrier
       country: USA
       domains: [ups.com]
     """, 3, "invalid country 'USA': use a two-letter ISO 3166-1 code like 'CN'"),
    ("""\
     - group: ups
       category: carrier
       domains: [ups.com]
       references: [developer.ups.com]
     """, 4, "invalid reference 'developer.ups.com': must be an http(s) URL"),
    ("""\
     - group: ups
       category: carrier
       domains: [ups.com]
     - group: ups
       category: carrier
       domains: [ups.de]
     """, 4, "duplicate group id 'ups' (first defined at line 1)"),
    ("""\
     - group: ups
       category: carrier
       domains: [ups.com]
     - group: fake-ups
       category: carrier
       domains: ["*.UPS.com."]
     """, 6, "domain 'ups.com' already belongs to group 'ups' (line 3)"),
    ("""\
     - group: ups
       category: carrier
       domains: [ups.com, ups.com]
     """, 3, "duplicate domain 'ups.com' in group 'ups' (first listed on line 3)"),
    ("""\
     - group: a
       category: cloud
       asns: [64500]
     - group: b
       category: cloud
       asns: [AS64500]
     """, 6, "AS64500 already belongs to group 'a' (line 3)"),
    ("""\
     - group: a
       category: cloud
       cidrs: [192.0.2.0/24]
     - group: b
       category: cloud
       cidrs: [192.0.2.0/24]
     """, 6, "CIDR 192.0.2.0/24 already belongs to group 'a' (line 3)"),
    ("""\
     group: ups
     category: carrier
     """, 1, "a group file must be a list of groups, got a mapping"),
    ("""\
     - ups.com
     """, 1, "each group must be a mapping, got a string"),
    ("""\
     - group: ups
       category: carrier
       domains: [ups.com
     """, 4, "YAML syntax error: expected ',' or ']', but got '<stream end>' "
             "(while parsing a flow sequence)"),
    ("""\
     - group: ups
       category: carrier
       category: cloud
       domains: [ups.com]
     """, 3, "duplicate key 'category' (first defined on line 2)"),
]


@pytest.mark.parametrize("body, line, message", GROUP_ERRORS,
                         ids=[m.split(" in group")[0][:48] for _, _, m in GROUP_ERRORS])
def test_group_file_errors(tmp_path, body, line, message):
    path = write(tmp_path, "groups.yaml", body)
    with pytest.raises(ConfigError) as ei:
        load_groups(path)
    assert str(ei.value) == f"{path}:{line}: {message}"
    assert ei.value.line == line
    assert check(path) and check(path)[0] == f"{path}:{line}: {message}"


def test_duplicate_group_id_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", """\
        - group: ups
          category: carrier
          domains: [ups.com]
        """)
    b = write(tmp_path, "b.yaml", """\
        # the same id again
        - group: ups
          category: carrier
          domains: [ups.de]
        """)
    with pytest.raises(ConfigError) as ei:
        load_groups(tmp_path)
    assert str(ei.value) == f"{b}:2: duplicate group id 'ups' (first defined at {a}:1)"


def test_check_reports_every_problem_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", """\
        - group: ups
          category: carriers
          domains: [ups.com, "bad domain"]
          asns: [AS0]
        - group: fedex
          category: carrier
          domains: [fedex.com]
          cidrs: [10.0.0.1/8]
        """)
    b = write(tmp_path, "b.yaml", "- group: dhl\n  category: carrier\n  domains: [dhl.com\n")
    c = write(tmp_path, "c.yml", """\
        - group: fedex
          category: carrier
          domains: [fedex.com]
        """)
    write(tmp_path, "notes.txt", "not a group file")
    assert check(tmp_path) == [
        f"{a}:2: unknown category 'carriers' (did you mean 'carrier'?)",
        f"{a}:3: invalid domain 'bad domain' in group 'ups'",
        f"{a}:4: invalid AS number 'AS0' in group 'ups' (must be AS1..AS4294967295)",
        f"{a}:8: invalid CIDR '10.0.0.1/8' in group 'fedex': host bits set "
        f"(did you mean 10.0.0.0/8?)",
        f"{b}:4: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        f"(while parsing a flow sequence)",
        f"{c}:1: duplicate group id 'fedex' (first defined at {a}:5)",
        f"{c}:3: domain 'fedex.com' already belongs to group 'fedex' ({a}:7)",
    ]


def test_missing_and_empty_directories(tmp_path):
    assert check(tmp_path) == [f"{tmp_path}: no group files (*.yaml) in directory"]
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as ei:
        load_groups(missing)
    assert str(ei.value) == f"{missing}: no such group file or directory"


def test_empty_file_and_single_scalar_lists(tmp_path):
    write(tmp_path, "empty.yaml", "# nothing yet\n")
    write(tmp_path, "one.yaml", """\
        - group: ups
          name: UPS
          category: carrier
          country: us
          domains: ups.com
          asns: 4972
          references: https://developer.ups.com/
        """)
    g = load_groups(tmp_path)
    assert len(g) == 1
    ups = g["ups"]
    assert ups.name == "UPS" and ups.country == "US"
    assert ups.domains == ("ups.com",) and ups.asns == (4972,)
    assert ups.references == ("https://developer.ups.com/",)
    assert ups.source.endswith("one.yaml:1")


# ------------------------------------------------------------ group matching

PRECEDENCE = """\
- group: example
  category: saas
  domains: [example.com]
  cidrs: [198.51.100.0/24, "2001:db8::/32"]
  asns: [64500]
- group: example-api
  name: Example API
  category: logistics-platform
  domains: [api.example.com, "bücher.example"]
  cidrs: [198.51.100.16/28, "2001:db8:1::/48"]
- group: example-asn
  category: cloud
  asns: [AS64501]
- group: example-host
  category: cdn
  cidrs: [198.51.100.17/32]
"""


@pytest.fixture(scope="module")
def pgroups():
    return loads_groups(PRECEDENCE, "precedence.yaml")


def test_domain_suffix_longest_wins_on_label_boundaries(pgroups):
    m = pgroups.match
    assert m("example.com") == ("example", "saas")
    assert m("www.example.com") == ("example", "saas")
    assert m("api.example.com") == ("example-api", "logistics-platform")
    assert m("EU.API.Example.COM.") == ("example-api", "logistics-platform")
    assert m("notexample.com") == (None, None)
    assert m("example.com.evil.net") == (None, None)
    assert m("xn--bcher-kva.example") == ("example-api", "logistics-platform")
    assert m("shop.bücher.example") == ("example-api", "logistics-platform")
    assert m("") == (None, None) and m(None) == (None, None)


def test_cidr_longest_prefix_wins(pgroups):
    m = pgroups.match
    assert m(addr="198.51.100.1") == ("example", "saas")
    assert m(addr="198.51.100.16") == ("example-api", "logistics-platform")
    assert m(addr="198.51.100.17") == ("example-host", "cdn")
    assert m(addr="198.51.100.18") == ("example-api", "logistics-platform")
    assert m(addr="198.51.100.31") == ("example-api", "logistics-platform")
    assert m(addr="198.51.100.32") == ("example", "saas")
    assert m(addr="198.51.101.1") == (None, None)
    assert m(addr="::ffff:198.51.100.17") == ("example-host", "cdn")
    assert m(addr=ipaddress.ip_address("198.51.100.20")) == ("example-api", "logistics-platform")
    assert m(addr="2001:db8:1::5") == ("example-api", "logistics-platform")
    assert m(addr="2001:db8:2::5") == ("example", "saas")
    assert m(addr="not an address") == (None, None)


def test_asn_and_precedence(pgroups):
    m = pgroups.match
    assert m(asn=64501) == ("example-asn", "cloud")
    assert m(asn="AS64500") == ("example", "saas")
    assert m(asn=64999) == (None, None)
    # name beats CIDR beats ASN
    assert m("api.example.com", "198.51.100.17", 64501) == ("example-api", "logistics-platform")
    assert m("unknown.test", "198.51.100.17", 64501) == ("example-host", "cdn")
    assert m("unknown.test", "192.0.2.1", 64501) == ("example-asn", "cloud")
    assert m(None, None, None) == (None, None)
    assert pgroups.match_group(asn=64501).name == "example-asn"


def test_match_v4_vectorised_equals_scalar(pgroups):
    rng = np.random.default_rng(7)
    base = ip2int("198.51.99.0")
    arr = (base + rng.integers(0, 3 * 256, 5000)).astype(np.uint32)
    ids, cats = pgroups.match_v4(arr)
    for a, gid, cat in zip(arr[:800], ids[:800], cats[:800]):
        assert pgroups.match(addr=str(ipaddress.IPv4Address(int(a)))) == (gid, cat)


def test_flatten_matches_brute_force():
    rng = random.Random(3)
    for _ in range(50):
        nets = set()
        for _ in range(rng.randint(1, 25)):
            plen = rng.randint(20, 32)
            addr = rng.randint(0, 4095) << 12 | rng.randint(0, 4095)
            nets.add(ipaddress.ip_network((addr, plen), strict=False))
        nets = sorted(nets, key=lambda n: (n.network_address, n.prefixlen))
        items = [(int(n.network_address), int(n.broadcast_address), i) for i, n in enumerate(nets)]
        segs = _flatten(items)
        starts = [s[0] for s in segs]
        assert starts == sorted(starts)
        assert all(a[1] < b[0] for a, b in zip(segs, segs[1:]))       # disjoint
        import bisect
        for _ in range(300):
            n = rng.choice(nets)
            v = int(n.network_address) + rng.randint(-4, n.num_addresses + 3)
            best = max((m for m in nets if int(m.network_address) <= v <= int(m.broadcast_address)),
                       key=lambda m: m.prefixlen, default=None)
            i = bisect.bisect_right(starts, v) - 1
            got = segs[i][2] if i >= 0 and v <= segs[i][1] else None
            assert got == (None if best is None else nets.index(best))


def test_groups_constructor_rejects_conflicts():
    a = Group(id="a", name="A", category="cloud", domains=("x.test",))
    with pytest.raises(ValueError, match="duplicate group id"):
        Groups([a, a])
    with pytest.raises(ValueError, match="domain 'x.test' is in groups 'a' and 'b'"):
        Groups([a, Group(id="b", name="B", category="cloud", domains=("X.test",))])
    with pytest.raises(ValueError, match="unknown category"):
        Groups([Group(id="c", name="C", category="nope", domains=("c.test",))])


# ------------------------------------------------------------ shipped groups

REQUIRED_GROUPS = {
    "alibaba-cloud", "cainiao", "tencent-cloud", "huawei-cloud", "baidu-cloud", "yandex-cloud",
    "ups", "fedex", "dhl", "dpd", "gls", "postnl", "la-poste", "royal-mail", "usps",
    "deutsche-post", "hermes", "evri", "tnt", "aramex", "sf-express", "yunexpress", "4px",
    "yanwen", "eu-customs", "fr-douane", "de-zoll", "nl-douane", "gb-hmrc", "it-adm",
    "microsoft", "google", "aws", "cloudflare", "windows-update", "ubuntu", "debian",
    "google-update", "apple-update", "pypi", "npm",
}


@pytest.fixture(scope="module")
def shipped():
    return load_groups(SHIPPED)


def test_every_shipped_file_loads(shipped):
    files = sorted(f for f in os.listdir(SHIPPED) if f.endswith((".yaml", ".yml")))
    assert len(files) >= 5
    assert check(SHIPPED) == []
    for f in files:
        assert check(os.path.join(SHIPPED, f)) == [], f
    assert REQUIRED_GROUPS <= {g.id for g in shipped}
    assert {g.category for g in shipped} <= set(CATEGORIES)


@pytest.mark.parametrize("name, addr, asn, expected", [
    ("oss-cn-hangzhou.aliyuncs.com", None, None, ("alibaba-cloud", "foreign-cloud")),
    ("g.alicdn.com", None, None, ("alibaba-cloud", "foreign-cloud")),
    (None, "47.74.1.1", None, ("alibaba-cloud", "foreign-cloud")),
    (None, None, 45102, ("alibaba-cloud", "foreign-cloud")),
    (None, None, "AS37963", ("alibaba-cloud", "foreign-cloud")),
    ("global.cainiao.com", "47.74.1.1", 45102, ("cainiao", "logistics-platform")),
    ("cos.ap-guangzhou.myqcloud.com", None, None, ("tencent-cloud", "foreign-cloud")),
    (None, None, 136907, ("huawei-cloud", "foreign-cloud")),
    ("storage.yandexcloud.net", None, None, ("yandex-cloud", "foreign-cloud")),
    ("onlinetools.ups.com", None, None, ("ups", "carrier")),
    ("apis.fedex.com", None, None, ("fedex", "carrier")),
    ("api-eu.dhl.com", None, None, ("dhl", "carrier")),
    ("ws.colissimo.fr", None, None, ("la-poste", "carrier")),
    ("api.postnl.nl", None, None, ("postnl", "carrier")),
    ("pro.douane.gouv.fr", None, None, ("fr-douane", "customs")),
    ("www.zoll.de", None, None, ("de-zoll", "customs")),
    ("api.service.hmrc.gov.uk", None, None, ("gb-hmrc", "customs")),
    ("www.agenziadoganemonopoli.gov.it", None, None, ("it-adm", "customs")),
    ("customs.ec.europa.eu", None, None, ("eu-customs", "customs")),
    ("ec.europa.eu", None, None, ("european-commission", "government")),
    ("download.windowsupdate.com", None, 8075, ("windows-update", "software-update")),
    ("fe2.update.microsoft.com", None, None, ("windows-update", "software-update")),
    ("login.microsoftonline.com", None, None, ("microsoft", "cloud")),
    ("myaccount.blob.core.windows.net", None, None, ("microsoft", "cloud")),
    (None, None, 8075, ("microsoft", "cloud")),
    ("storage.googleapis.com", None, None, ("google", "cloud")),
    ("dl.google.com", None, 15169, ("google-update", "software-update")),
    ("s3.eu-central-1.amazonaws.com", None, None, ("aws", "cloud")),
    ("d111111abcdef8.cloudfront.net", None, None, ("aws", "cloud")),
    ("sellingpartnerapi-eu.amazon.com", None, None, ("amazon", "marketplace")),
    ("aws.amazon.com", None, None, ("aws", "cloud")),
    ("de.archive.ubuntu.com", None, None, ("ubuntu", "software-update")),
    ("security.ubuntu.com", None, None, ("ubuntu", "software-update")),
    ("deb.debian.org", None, None, ("debian", "software-update")),
    ("swcdn.apple.com", None, None, ("apple-update", "software-update")),
    ("www.apple.com", None, None, ("apple", "saas")),
    ("files.pythonhosted.org", None, None, ("pypi", "software-update")),
    ("registry.npmjs.org", None, None, ("npm", "software-update")),
    (None, "8.8.8.8", 15169, ("google-public-dns", "dns")),
    (None, "1.1.1.1", 13335, ("cloudflare-dns", "dns")),
    (None, "104.16.1.1", None, ("cloudflare", "cdn")),
    (None, "2606:4700::6810:1", None, ("cloudflare", "cdn")),
    ("time.windows.com", None, None, ("public-ntp", "time")),
    ("example.invalid", "192.0.2.1", 64500, (None, None)),
])
def test_shipped_matches(shipped, name, addr, asn, expected):
    assert shipped.match(name, addr, asn) == expected


# ------------------------------------------------------------ GeoDB: range CSV

COUNTRY_CSV = """\
ip_range_start,ip_range_end,country_code
8.8.8.0,8.8.8.255,US
47.74.0.0,47.75.255.255,SG
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US
"""
ASN_CSV = """\
8.8.8.0,8.8.8.255,15169,Google LLC
47.74.0.0,47.75.255.255,45102,"Alibaba (US) Technology Co., Ltd."
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC
"""


@pytest.fixture
def csv_geo(tmp_path):
    c = write(tmp_path, "country.csv", COUNTRY_CSV)
    a = write(tmp_path, "asn.csv", ASN_CSV)
    return GeoDB(geoip_path=c, asn_path=a, bundled=False)


def test_csv_geo(csv_geo):
    assert csv_geo.lookup("8.8.8.8") == ("US", 15169, "Google LLC")
    assert csv_geo.lookup("47.75.255.255") == ("SG", 45102, "Alibaba (US) Technology Co., Ltd.")
    assert csv_geo.lookup("2001:4860:4860::8888") == GeoInfo("US", 15169, "Google LLC")
    assert csv_geo.lookup("::ffff:8.8.8.8") == ("US", 15169, "Google LLC")
    assert csv_geo.lookup("8.8.9.1") == (None, None, None)
    assert csv_geo.has_asn_numbers


def test_asn_most_specific_announcement_wins(tmp_path):
    """Nested announcements in an AS table: longest-prefix match, whichever comes first in the file
    and whether or not the prefixes share a start address (a /16 and a /24 at its start)."""
    a = write(tmp_path, "asn.csv", "11.0.0.0,11.0.255.255,64500,Holder\n"          # /16
                                   "192.0.2.0,192.0.2.255,64502,Other\n"
                                   "11.0.0.0,11.0.0.255,64501,First24\n"           # /24 at the /16's start
                                   "11.0.9.0,11.0.9.127,64503,Inner25\n")          # /25 inside
    g = GeoDB(asn_path=a, bundled=False)
    assert g.lookup("11.0.0.7").asn == 64501
    assert g.lookup("11.0.1.7").asn == 64500
    assert g.lookup("11.0.9.100").asn == 64503 and g.lookup("11.0.9.200").asn == 64500
    arr = np.array([ip2int(x) for x in ("11.0.0.7", "11.0.1.7", "11.0.9.100", "11.0.9.200")], dtype=np.uint32)
    assert g.lookup_v4(arr)[1].tolist() == [64501, 64500, 64503, 64500]


def test_mitigation_network_inside_a_holders_space_is_the_holder(tmp_path):
    """A DDoS-mitigation AS (inspector/data/mitigation_asns.csv) announcing a /24 between two
    ranges of one holder: the destination is the holder, as the registry says.  Elsewhere the
    mitigation AS keeps its own prefixes."""
    a = write(tmp_path, "asn.csv", "165.72.0.0,165.72.189.255,2571,DHL\n"
                                   "165.72.190.0,165.72.190.255,19905,Neustar\n"
                                   "165.72.191.0,165.72.255.255,2571,DHL\n"
                                   "64.6.64.0,64.6.64.255,19905,Neustar\n"
                                   "64.6.65.0,64.6.65.255,7018,AT&T\n")
    g = GeoDB(asn_path=a, bundled=False)
    assert g.lookup("165.72.190.5") == (None, 2571, "DHL")
    assert g.lookup("64.6.64.1") == (None, 19905, "Neustar")


def test_bundled_carrier_range_behind_a_mitigation_network(bundled):
    """DHL's API ranges (AS2571) hold /24s announced by Neustar's DDoS protection (AS19905)."""
    for addr in ("165.72.190.5", "156.137.1.5", "199.40.15.5"):
        assert bundled.lookup(addr).asn == 2571, addr


def test_csv_errors(tmp_path):
    bad = write(tmp_path, "asn.csv", "8.8.8.0,8.8.8.255,15169,Google\n8.8.9.0,8.8.9.255,AS-X,Nope\n")
    with pytest.raises(ConfigError) as ei:
        GeoDB(asn_path=bad, bundled=False)
    assert str(ei.value) == f"{bad}:2: invalid AS number 'AS-X'"
    bad2 = write(tmp_path, "c.csv", "8.8.8.0,1.1.1.1,US\n")
    with pytest.raises(ConfigError) as ei:
        GeoDB(geoip_path=bad2, bundled=False)
    assert str(ei.value) == f"{bad2}:1: invalid address range '8.8.8.0'-'1.1.1.1'"
    dat = tmp_path / "geoip2fast.dat.gz"
    dat.write_bytes(b"")
    with pytest.raises(ConfigError) as ei:
        GeoDB(geoip_path=dat, bundled=False)
    assert "not accepted as paths" in str(ei.value)
    missing = str(tmp_path / "GeoLite2-Country.mmdb")
    with pytest.raises(ConfigError) as ei:
        GeoDB(geoip_path=missing, bundled=False)
    assert str(ei.value) == f"{missing}: cannot read GeoIP database: No such file or directory"


# ------------------------------------------------------------ GeoDB: bundled data

PRIVATE = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1",
           "100.64.0.1", "192.0.2.1", "198.18.0.1", "224.0.0.251", "255.255.255.255",
           "0.0.0.0", "::1", "::", "fe80::1", "fd00::1", "ff02::1", "2001:db8::1",
           "::ffff:10.0.0.1", "not-an-ip", "", None, b"\x0a\x00\x00\x01"]


@pytest.fixture(scope="module")
def bundled():
    pytest.importorskip("geoip2fast", reason="geoip2fast (bundled GeoIP data) is not installed")
    return GeoDB()


def test_bundled_well_known_addresses(bundled):
    # country: geoip2fast's GeoLite2 snapshot; AS number and organisation: the vendored
    # ip-location-db snapshot (inspector/data/asn.npz)
    assert bundled.lookup("8.8.8.8") == ("US", 15169, "Google LLC")
    assert bundled.lookup("2001:4860:4860::8888") == ("US", 15169, "Google LLC")
    assert bundled.lookup("1.1.1.1")[1:] == (13335, "Cloudflare, Inc.")
    ali = bundled.lookup("47.246.1.1")                 # Alibaba CDN (AS24429)
    assert ali.country in ("CN", "SG", "US")
    assert ali.asn == 24429 and ("Taobao" in ali.org or "Alibaba" in ali.org)
    assert bundled.lookup("47.74.1.1").asn == 45102
    assert bundled.has_asn_numbers
    assert "ip-location-db" in bundled.sources["asn"]
    assert "GeoLite2" in bundled.sources["country"]


@pytest.mark.parametrize("addr", PRIVATE)
def test_bundled_private_and_invalid_are_none(bundled, addr):
    assert bundled.lookup(addr) == (None, None, None)


def test_bundled_vectorised_paths_agree(bundled):
    rng = np.random.default_rng(11)
    arr = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    arr[:4] = [ip2int("8.8.8.8"), ip2int("10.0.0.1"), ip2int("47.74.1.1"), ip2int("224.0.0.1")]
    country, asn, org = bundled.lookup_v4(arr)
    assert (country[0], asn[0], org[0]) == ("US", 15169, "Google LLC")
    assert (country[1], asn[1], org[1]) == (None, None, None)
    strs = [str(ipaddress.IPv4Address(int(a))) for a in arr]
    for i in range(0, len(arr), 37):
        assert bundled.lookup(strs[i]) == (country[i], asn[i], org[i]), strs[i]
    c2, a2, o2 = bundled.lookup_many(strs[:500] + ["2001:4860:4860::8888", None])
    assert list(c2[:500]) == list(country[:500]) and list(o2[:500]) == list(org[:500])
    assert (c2[500], a2[500], o2[500]) == ("US", 15169, "Google LLC") and c2[501] is None


# ------------------------------------------------------------ GeoDB: MaxMind DB

@pytest.fixture(scope="module")
def mmdb_paths(tmp_path_factory):
    mw = pytest.importorskip("mmdb_writer", reason="mmdb-writer (test-only) is not installed; "
                                                   "pip install mmdb-writer to test .mmdb support")
    netaddr = pytest.importorskip("netaddr", reason="netaddr (needed by mmdb-writer) is not installed")
    pytest.importorskip("maxminddb", reason="maxminddb is not installed")
    d = tmp_path_factory.mktemp("mmdb")
    country = mw.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
                            languages=["en"], description={"en": "test"}, int_type="u32")
    country.insert_network(netaddr.IPSet(["8.8.8.0/24", "2001:4860::/32"]),
                           {"country": {"iso_code": "US", "names": {"en": "United States"}}})
    country.insert_network(netaddr.IPSet(["47.74.0.0/15"]),
                           {"registered_country": {"iso_code": "CN"}})
    country.insert_network(netaddr.IPSet(["10.0.0.0/8"]), {"country": {"iso_code": "ZZ"}})
    cpath = str(d / "GeoLite2-Country.mmdb")
    country.to_db_file(cpath)
    asn = mw.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN",
                        languages=["en"], description={"en": "test"}, int_type="u32")
    asn.insert_network(netaddr.IPSet(["8.8.8.0/24", "2001:4860::/32"]),
                       {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"})
    asn.insert_network(netaddr.IPSet(["47.74.0.0/15"]),
                       {"autonomous_system_number": 45102,
                        "autonomous_system_organization": "Alibaba US Technology Co., Ltd."})
    apath = str(d / "GeoLite2-ASN.mmdb")
    asn.to_db_file(apath)
    return cpath, apath


def test_mmdb_geo(mmdb_paths):
    cpath, apath = mmdb_paths
    g = GeoDB(geoip_path=cpath, asn_path=apath, bundled=False)
    assert g.lookup("8.8.8.8") == ("US", 15169, "GOOGLE")
    assert g.lookup("2001:4860:4860::8888") == ("US", 15169, "GOOGLE")
    assert g.lookup("47.74.1.1") == ("CN", 45102, "Alibaba US Technology Co., Ltd.")
    assert g.lookup("9.9.9.9") == (None, None, None)
    assert g.lookup("10.1.1.1") == (None, None, None)          # reserved beats the file
    assert g.has_asn_numbers
    assert "GeoLite2-ASN" in g.sources["asn"]
    arr = np.array([ip2int("8.8.8.8"), ip2int("10.0.0.1"), ip2int("47.74.0.0")], dtype=np.uint32)
    c, a, o = g.lookup_v4(arr)
    assert list(c) == ["US", None, "CN"] and list(a) == [15169, None, 45102]


def test_not_an_mmdb(tmp_path):
    pytest.importorskip("maxminddb", reason="maxminddb is not installed")
    p = tmp_path / "x.mmdb"
    p.write_bytes(b"not a database")
    with pytest.raises(ConfigError) as ei:
        GeoDB(geoip_path=p, bundled=False)
    assert str(ei.value).startswith(f"{p}: not a valid MaxMind DB file")


# ------------------------------------------------------------ Enricher

def test_enricher_destination(csv_geo, pgroups):
    site = Site(allowed_domains=["api.example.com"], allowed_asns=["AS45102"])
    e = Enricher(site, csv_geo, pgroups)
    d = e.destination("8.8.8.8", None)
    assert tuple(d) == DESTINATION_FIELDS
    assert d == {"dst_country": "US", "dst_asn": 15169, "dst_org": "Google LLC",
                 "dst_group": None, "dst_category": None, "dst_allowed": False}
    d = e.destination("47.74.1.1", "cdn.unknown.test")
    assert d["dst_asn"] == 45102 and d["dst_allowed"] is True      # allowed by ASN
    d = e.destination("198.51.100.20", "eu.api.example.com")
    assert d == {"dst_country": None, "dst_asn": None, "dst_org": None,
                 "dst_group": "example-api", "dst_category": "logistics-platform",
                 "dst_allowed": True}
    assert e.destination("10.0.0.1", "") == {k: (False if k == "dst_allowed" else None)
                                             for k in DESTINATION_FIELDS}


def test_enricher_cache_and_columns(csv_geo, pgroups):
    e = Enricher(None, csv_geo, pgroups)
    first = e.destination("8.8.8.8", "www.example.com")
    first["dst_group"] = "tampered"                             # callers get copies
    again = e.destination("8.8.8.8", "www.example.com")
    assert again["dst_group"] == "example" and again["dst_asn"] == 15169
    assert len(e._cache) == 1
    cols = e.destinations(["8.8.8.8", "47.74.1.1", "198.51.100.17"],
                          ["www.example.com", float("nan"), None])
    assert set(cols) == set(DESTINATION_FIELDS)
    assert cols["dst_group"] == ["example", None, "example-host"]
    assert cols["dst_asn"] == [15169, 45102, None]
    assert cols["dst_allowed"] == [False, False, False]
    with pytest.raises(ValueError):
        e.destinations(["8.8.8.8"], [None, None])


def test_enricher_with_shipped_groups_and_bundled_geo(bundled, shipped):
    e = Enricher(Site(allowed_domains=["ups.com"]), bundled, shipped)
    d = e.destination("47.74.1.1", "global.cainiao.com")
    assert (d["dst_group"], d["dst_category"]) == ("cainiao", "logistics-platform")
    assert d["dst_org"].startswith("Alibaba") and d["dst_allowed"] is False
    d = e.destination("47.74.1.1", None)
    assert (d["dst_group"], d["dst_category"]) == ("alibaba-cloud", "foreign-cloud")
    assert e.destination("8.8.8.8", "onlinetools.ups.com")["dst_allowed"] is True
