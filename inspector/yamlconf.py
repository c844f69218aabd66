"""YAML configuration files (site, destination groups, policy rules): composing and describing nodes.

The three loaders validate node by node so that every problem is reported as ``file:line:
message``; they share what that needs from YAML: composing a document to nodes that carry their
line (never constructing arbitrary objects), the standard scalar tags, a node's line and a
description of what a node is ("got a list") for error messages.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple, Union

import yaml

from .errors import ConfigError

__all__ = ["TAG_NULL", "TAG_BOOL", "TAG_INT", "TAG_FLOAT", "TAG_STR", "SCALAR_TEXT", "compose", "node_line",
           "node_kind", "is_null", "yaml_files"]

TAG_NULL = "tag:yaml.org,2002:null"
TAG_BOOL = "tag:yaml.org,2002:bool"
TAG_INT = "tag:yaml.org,2002:int"
TAG_FLOAT = "tag:yaml.org,2002:float"
TAG_STR = "tag:yaml.org,2002:str"
#: scalars whose text is taken as written (addresses, names, ids), whatever YAML 1.1 would make of them
SCALAR_TEXT = (TAG_STR, TAG_INT, TAG_FLOAT)


class _Loader(yaml.SafeLoader):
    """SafeLoader; only used to compose (nodes carry start_mark line numbers)."""


def compose(text: Union[str, bytes], path: str) -> Tuple[Optional[yaml.Node], Optional[ConfigError]]:
    """``(root node, None)`` of a YAML document, or ``(None, error)`` naming the file and line of
    the first problem: bytes that are not UTF-8 (a BOM is allowed), a syntax error, a control
    character.  An empty document gives ``(None, None)``."""
    if isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            return None, ConfigError(path, line, "file is not valid UTF-8")
    try:
        return yaml.compose(text, Loader=_Loader), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            detail = f"{exc.problem} ({exc.context})"
        return None, ConfigError(path, mark.line + 1 if mark else None, f"YAML syntax error: {detail}")
    except yaml.YAMLError as exc:           # e.g. ReaderError: control characters
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        reason = getattr(exc, "reason", None) or str(exc)
        return None, ConfigError(path, line, f"YAML syntax error: {reason}")


def yaml_int(text: str) -> int:
    """The integer a YAML int scalar denotes, as YAML 1.1 reads it (the resolver that tagged it):
    signs, underscores, 0x/0b, leading-zero octal (``0500001``), sexagesimal.  ValueError if not."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"invalid integer {text!r}") from e
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"invalid integer {text!r}")
    return value


def node_line(node: Optional[yaml.Node]) -> Optional[int]:
    """The 1-based line a node starts on; None for no node."""
    return node.start_mark.line + 1 if node is not None else None


def node_kind(node: yaml.Node) -> str:
    """What a node is, for "expected X, got Y" messages: ``a mapping``, ``a list``, ``a string``..."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return {
        TAG_NULL: "null",
        TAG_BOOL: "a boolean",
        TAG_INT: "an integer",
        TAG_FLOAT: "a number",
        TAG_STR: "a string",
    }.get(node.tag, f"a value tagged {node.tag}")


def is_null(node: Optional[yaml.Node]) -> bool:
    """A YAML null scalar (``~``, ``null`` or nothing)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == TAG_NULL


def yaml_files(path: Union[str, "os.PathLike[str]"], what: str) -> Tuple[List[str], Optional[ConfigError]]:
    """The configuration files at ``path``: the file itself, or a directory's ``*.yaml`` / ``*.yml``
    files in name order (hidden ones skipped); ``([], error)`` when there are none.  ``what`` names
    the kind of file in errors (``rule``, ``group``)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        try:
            names = sorted(os.listdir(p))
        except OSError as exc:
            return [], ConfigError(p, None, f"cannot read {what} directory: {exc.strerror or exc}")
        files = [os.path.join(p, n) for n in names
                 if n.endswith((".yaml", ".yml")) and not n.startswith(".") and os.path.isfile(os.path.join(p, n))]
        if not files:
            return [], ConfigError(p, None, f"no {what} files (*.yaml) in directory")
        return files, None
    if os.path.exists(p):
        return [p], None
    return [], ConfigError(p, None, f"no such {what} file or directory")
