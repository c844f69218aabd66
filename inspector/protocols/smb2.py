"""SMB over TCP (direct 445 and NetBIOS session service 139): detection, no log.

The probe wants a NetBIOS session message (type 0x00, 24-bit length) that
carries an SMB header: ``\\xfeSMB`` (SMB2/3), ``\\xffSMB`` (SMB1) or
``\\xfdSMB`` (SMB3 transform, encrypted); or a NetBIOS session request
(type 0x81) with two first-level-encoded names, which precedes SMB on 139.
The analyzer follows the NetBIOS framing, confirms ``smb`` (Zeek's service
name) on the first SMB header, and notes the SMB versions seen and the
dialect chosen in an SMB2 NEGOTIATE response; it stops after ``MAX_MESSAGES``.
"""
from __future__ import annotations

from .base import Analyzer as _BaseAnalyzer, FlowContext

NAME = "smb"
TRANSPORTS = ("tcp",)
PORTS = (445, 139)
LOG = None
FIELDS = ()
# ---- outputs (read by inspector.outputs): no log of its own; this module's weird names ----
WEIRDS = {
    "smb.bad_netbios_type": "a NetBIOS session message type other than session message (0x00)",
}
# ---- end of outputs declarations ----

MAX_MESSAGES = 32
SMB2, SMB1, SMB3_TRANSFORM = b"\xfeSMB", b"\xffSMB", b"\xfdSMB"
NBSS_MESSAGE, NBSS_REQUEST, NBSS_POSITIVE, NBSS_NEGATIVE, NBSS_RETARGET, NBSS_KEEPALIVE = \
    0x00, 0x81, 0x82, 0x83, 0x84, 0x85


def _encoded_name(b: bytes, p: int) -> int | None:
    """A first-level-encoded NetBIOS name (length 32, letters A-P, then scope labels) -> end offset."""
    if p >= len(b) or b[p] != 0x20 or p + 33 > len(b):
        return None
    if not all(0x41 <= c <= 0x50 for c in b[p + 1:p + 33]):
        return None
    p += 33
    while p < len(b) and b[p]:                 # scope id labels
        p += 1 + b[p]
    return p + 1 if p < len(b) else None


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        return _probe(bytes(data[:256]), is_orig)
    except Exception:
        return False


def _probe(b: bytes, is_orig: bool) -> bool:
    if len(b) < 8:
        return False
    ln = (b[1] << 16) | (b[2] << 8) | b[3]
    if b[0] == NBSS_MESSAGE:
        hdr = b[4:8]
        if hdr == SMB2:
            # header StructureSize 64 (bytes 4-5 of the SMB2 header), command <= 0x12 (bytes 12-13)
            if ln < 64:
                return False
            if len(b) >= 10 and (b[8] | (b[9] << 8)) != 64:
                return False
            return len(b) < 18 or (b[16] | (b[17] << 8)) <= 0x12
        if hdr == SMB1:
            return ln >= 32
        if hdr == SMB3_TRANSFORM:
            return ln >= 52
        return False
    if b[0] == NBSS_REQUEST and is_orig and b[1] in (0, 1) and 68 <= ln <= 600:
        e = _encoded_name(b, 4)
        return e is not None and _encoded_name(b, e) is not None
    return False


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.versions: set = set()         # "SMB1", "SMB2", "SMB3-encrypted"
        self.dialect = None                # SMB2 NEGOTIATE response DialectRevision, e.g. 0x0311
        self.messages = 0
        self._buf = {True: bytearray(), False: bytearray()}
        self._skip = {True: 0, False: 0}
        self._dead = {True: False, False: False}

    def wants_more(self) -> bool:
        return self.messages < MAX_MESSAGES and not (self._dead[True] and self._dead[False])

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        self._dead[is_orig] = True
        self._buf[is_orig].clear()

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._dead[is_orig]:
            return
        if self._skip[is_orig]:
            k = min(self._skip[is_orig], len(data))
            self._skip[is_orig] -= k
            data = data[k:]
        buf = self._buf[is_orig]
        buf += data
        while len(buf) >= 4 and self.messages < MAX_MESSAGES:
            t = buf[0]
            ln = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if t not in (NBSS_MESSAGE, NBSS_REQUEST, NBSS_POSITIVE, NBSS_NEGATIVE, NBSS_RETARGET, NBSS_KEEPALIVE):
                self.ctx.weird("smb.bad_netbios_type", f"0x{t:02x}", ts)
                self._dead[is_orig] = True
                buf.clear()
                return
            self.messages += 1
            head = bytes(buf[4:4 + min(ln, 80)])
            if len(buf) < 4 + ln:
                if len(head) >= min(ln, 80):
                    self._message(is_orig, t, head, ts)
                    self._skip[is_orig] = 4 + ln - len(buf)
                    buf.clear()
                else:
                    self.messages -= 1
                return
            del buf[:4 + ln]
            self._message(is_orig, t, head, ts)

    def _message(self, is_orig: bool, t: int, head: bytes, ts: float) -> None:
        if t != NBSS_MESSAGE or len(head) < 4:
            return
        proto = head[:4]
        if proto == SMB2:
            self.versions.add("SMB2")
            # SMB2 header: command at 12; flags at 16 (bit 0 = response); NEGOTIATE = 0
            if len(head) >= 64 + 6 and head[12] == 0 and head[16] & 1:
                self.dialect = head[64 + 4] | (head[64 + 5] << 8)
        elif proto == SMB1:
            self.versions.add("SMB1")
        elif proto == SMB3_TRANSFORM:
            self.versions.add("SMB3-encrypted")
        else:
            return
        if not self.ctx.service or NAME not in self.ctx.service:
            self.ctx.confirm(NAME)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "smb"}
CONTENT = "raw"
