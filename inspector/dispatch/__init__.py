"""Protocol dispatch: per-connection sessions, reassembly, detection, analyzers.

``Dispatcher`` (dispatcher.py) observes the flow table and drives the protocol
modules; ``ProtocolLogs`` (logs.py) is the path their log records take out
(masking the PII the modules declare).  Destination naming and enrichment
(``inspector.enrich.flows``) and content inspection (``inspector.content.sink``)
are sinks the dispatcher feeds; they run on ended flows, outside it.
"""
from __future__ import annotations

from .dispatcher import Dispatcher
from .logs import ProtocolLogs, mask_record, mask_text

__all__ = ["Dispatcher", "ProtocolLogs", "mask_record", "mask_text"]
