"""Exceptions shared across the inspector package."""

from __future__ import annotations

import os
from typing import Optional, Union

__all__ = ["ConfigError"]


def _one_line(text: object) -> str:
    """Collapse all whitespace runs (including newlines) into single spaces."""
    return " ".join(str(text).split())


class ConfigError(Exception):
    """A configuration or signature file is missing, unreadable or invalid.

    Attributes:
        path:    the file the problem is in (as given by the caller, str()-ed)
        line:    1-based line number of the offending value, or None when the
                 problem is not tied to a line (missing file, ...)
        message: human-readable description, always a single line

    ``str(err)`` is exactly one line: ``"{path}:{line}: {message}"``, or
    ``"{path}: {message}"`` when ``line`` is None, the conventional shape
    that editors and CI log parsers recognise.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        line: Optional[int],
        message: str,
    ) -> None:
        self.path = _one_line(os.fspath(path)) if path is not None else "<unknown>"
        self.line = int(line) if line is not None else None
        self.message = _one_line(message)
        super().__init__(self.path, self.line, self.message)

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigError({self.path!r}, {self.line!r}, {self.message!r})"

    def __reduce__(self):
        # Keep the exception picklable (e.g. across multiprocessing workers).
        return (type(self), (self.path, self.line, self.message))
