"""Where the signature files are: ``signatures_dir(arg)``.

A module of its own (not ``settings``) so that the policy package, which the settings load, can
resolve the directory without importing ``settings`` back.
"""
from __future__ import annotations

import os


def signatures_dir(arg: str | None = None) -> str:
    """``arg``, else ./signatures when it holds destination groups, else the directory shipped with
    inspector."""
    if arg:
        return arg
    if os.path.isdir(os.path.join("signatures", "destinations")):
        return "signatures"
    from .enrich import default_groups_dir
    return os.path.dirname(default_groups_dir())
