"""Per-connection dispatch state (one ``Session`` per connection that carried payload)."""
from __future__ import annotations


class Session:
    """What the dispatcher keeps about one connection while it is analysed.

    ``pending`` holds (is_orig, kind, value, ts) stream events that arrived before a probe
    matched, in arrival order; ``pbuf`` the first ``PROBE_BYTES`` of each direction (indexed by
    ``is_orig``: [resp, orig]); ``watch`` counts the data chunks still checked for a protocol
    upgrade (STARTTLS) once detection or analysis is over; ``leave`` is the ``is_orig`` value of
    the direction that leaves the site and ``content`` the content sink's handle, both None when
    nothing of the connection is inspected; ``raw`` means only the leaving stream is still wanted.
    """
    __slots__ = ("ctx", "analyzer", "reasm", "pending", "pbuf", "npay", "pending_bytes", "module", "parent",
                 "watch", "fid", "leave", "content", "raw", "started", "files", "channel")

    def __init__(self, ctx, fid: int):
        self.ctx = ctx
        self.fid = fid
        self.reasm = None
        self.restart_detection()
        self.parent = None         # uid of the connection that announced this one (FTP data channel)
        self.watch = 0
        self.leave = None
        self.content = None
        self.raw = False
        self.started = False
        self.files = None          # the content sink's FilesFlow once a file was seen
        self.channel = False       # an announced data channel whose bytes are files

    def restart_detection(self) -> None:
        """No analyzer, nothing buffered: detection starts over (a new session, or the inside of a
        tunnel once the outer protocol is done)."""
        self.analyzer = None
        self.module = None
        self.pending = []
        self.pending_bytes = 0
        self.pbuf = [b"", b""]
        self.npay = [0, 0]
