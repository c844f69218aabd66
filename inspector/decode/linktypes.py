"""Link-layer type (DLT / LINKTYPE_*) names, for stats keys and messages."""

NAMES = {
    0: "NULL", 1: "EN10MB", 6: "IEEE802", 8: "SLIP", 9: "PPP", 10: "FDDI", 12: "RAW", 14: "RAW",
    50: "PPP_HDLC", 51: "PPP_ETHER", 100: "ATM_RFC1483", 101: "RAW", 104: "C_HDLC",
    105: "IEEE802_11", 107: "FRELAY", 108: "LOOP", 113: "LINUX_SLL", 117: "PFLOG",
    119: "PRISM_HEADER", 123: "SUNATM", 127: "IEEE802_11_RADIO", 129: "ARCNET_LINUX",
    132: "JUNIPER_ES", 137: "JUNIPER_ATM1", 138: "APPLE_IP_OVER_IEEE1394", 143: "DOCSIS",
    147: "USER0", 148: "USER1", 149: "USER2", 160: "USER13", 164: "LT", 178: "JUNIPER_ETHER",
    182: "MFR", 192: "PPI", 195: "IEEE802_15_4_WITHFCS", 201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    215: "IEEE802_15_4_NONASK_PHY", 220: "USB_LINUX_MMAPPED", 226: "IPNET", 227: "CAN_SOCKETCAN",
    228: "IPV4", 229: "IPV6", 231: "DBUS", 239: "NFLOG", 242: "IPOIB", 249: "USBPCAP",
    258: "PKTAP", 271: "VSOCK", 276: "LINUX_SLL2", 284: "DSA_TAG_DSA",
    285: "DSA_TAG_EDSA",
}

# Link types decoded (fast path or per-packet path).
SUPPORTED = {0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 105, 108, 113, 127, 192, 228, 229, 239, 276}


def linktype_name(lt: int) -> str:
    """'EN10MB(1)' style name used in stats outcome keys."""
    return f"{NAMES.get(lt, 'DLT')}({lt})"
