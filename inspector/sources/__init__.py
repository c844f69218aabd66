"""Packet sources for ``inspector.pipeline.run``: each has ``batches(pipe)``, an iterator of packet
batches (and idle/heartbeat items, see ``inspector.pipeline``).

* ``files.FileSource``  capture files, directories, globs or ``-`` (stdin), through ``ingest``
* ``live.LiveSource``   a network interface through libpcap (``libpcap.LibpcapCapture``), with a
  capture thread, bounded hand-over and idle sweeps

Sources may import anything below the pipeline (ingest, decode...); nothing below imports them.
"""
