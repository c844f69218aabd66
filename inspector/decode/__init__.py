"""Decode stage: packet batches -> columnar IP/transport rows (fast numpy path + per-packet path)."""
from .batch import Decoder, DecodedBatch  # noqa: F401
