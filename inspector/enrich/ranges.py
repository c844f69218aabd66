"""Address ranges that nest: the most specific one wins.

Routing tables and registry data hold nested prefixes (a /16 announced by its holder and a /24
inside it announced by someone else); longest-prefix match is how routers and registries resolve
them.  ``flatten_most_specific`` turns nested ranges into disjoint segments, each labelled with its
most specific covering range, so a sorted-array lookup (bisect or numpy ``searchsorted``) gives the
longest-prefix answer.  Used for destination-group CIDRs and for AS number tables.
"""
from __future__ import annotations

from typing import List, Tuple


def flatten_most_specific(items) -> List[Tuple[int, int, int]]:
    """(start, end, label) ranges, inclusive, nested or disjoint -> disjoint segments, each labelled
    with its most specific covering range.  Ranges that partly overlap without nesting: the one that
    starts later wins where they overlap."""
    out: List[Tuple[int, int, int]] = []
    stack: List[List[int]] = []              # [end, label, cursor]

    def close_top() -> None:
        end, label, cursor = stack.pop()
        if cursor <= end:
            out.append((cursor, end, label))
        if stack:
            stack[-1][2] = max(stack[-1][2], end + 1)

    for start, end, label in sorted(items, key=lambda t: (t[0], -t[1])):
        while stack and stack[-1][0] < start:
            close_top()
        if stack:
            top = stack[-1]
            if top[2] <= start - 1:
                out.append((top[2], start - 1, top[1]))
            top[2] = start
        stack.append([end, label, start])
    while stack:
        close_top()
    out.sort()
    return out
