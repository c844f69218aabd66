"""Build inspector/data/asn.npz, the bundled offline IP -> (AS number, AS organisation) table.

Source: the npm package @ip-location-db/asn (RouteViews + DB-IP + NRO, CC BY 4.0),
fetched with the ordinary npm client:

    cd /tmp && npm pack @ip-location-db/asn && tar xzf ip-location-db-asn-*.tgz
    python scripts/build_asn_data.py /tmp/package

Adjacent IPv4 ranges of the same AS are merged; IPv6 ranges are kept.  The
result is a compressed numpy archive read by inspector.enrich.geo (no parsing
at start-up).  Provenance and licence: signatures/README.md.
"""
from __future__ import annotations

import csv
import ipaddress
import json
import os
import sys

import numpy as np


def main(pkg: str, out: str) -> None:
    values: dict = {}
    orgs: list = []
    asns: list = []

    def vid(asn: int, org: str) -> int:
        k = (asn, org)
        v = values.get(k)
        if v is None:
            v = values[k] = len(asns) + 1
            asns.append(asn)
            orgs.append(org)
        return v

    s4, e4, i4 = [], [], []
    with open(os.path.join(pkg, "asn-ipv4-num.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            start, end, asn, org = int(row[0]), int(row[1]), int(row[2]), row[3]
            v = vid(asn, org)
            if s4 and i4[-1] == v and e4[-1] + 1 == start:
                e4[-1] = end
            else:
                s4.append(start)
                e4.append(end)
                i4.append(v)
    s6, e6, i6 = [], [], []
    with open(os.path.join(pkg, "asn-ipv6-num.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            start, end, asn, org = int(row[0]), int(row[1]), int(row[2]), row[3]
            s6.append(start)
            e6.append(end)
            i6.append(vid(asn, org))
    meta = json.load(open(os.path.join(pkg, "package.json")))
    np.savez_compressed(
        out,
        v4_start=np.array(s4, dtype=np.uint32), v4_end=np.array(e4, dtype=np.uint32),
        v4_id=np.array(i4, dtype=np.int32),
        v6_start_hi=np.array([s >> 64 for s in s6], dtype=np.uint64),
        v6_start_lo=np.array([s & (2**64 - 1) for s in s6], dtype=np.uint64),
        v6_end_hi=np.array([e >> 64 for e in e6], dtype=np.uint64),
        v6_end_lo=np.array([e & (2**64 - 1) for e in e6], dtype=np.uint64),
        v6_id=np.array(i6, dtype=np.int32),
        asn=np.array(asns, dtype=np.uint32),
        org=np.frombuffer("\n".join(o.replace("\n", " ") for o in orgs).encode("utf-8"), dtype=np.uint8),
        source=np.frombuffer(json.dumps({"package": meta.get("name"), "version": meta.get("version"),
                                         "license": meta.get("license")}).encode(), dtype=np.uint8),
    )
    print(f"{out}: {len(s4)} IPv4 ranges, {len(s6)} IPv6 ranges, {len(asns)} AS/org values")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "inspector/data/asn.npz")
