"""Write an MBR partition table into a disk image file (no root needed).

Usage: mbr.py IMAGE ACTIVE:TYPE:START:COUNT ...   (up to four entries;
TYPE in hex, START and COUNT in 512-byte sectors; ACTIVE is 1 for the
partition the MBR boot code starts).  The boot code (the first 440
bytes) is left as it is.  CHS fields are set to "beyond CHS" since
SeaBIOS and syslinux's mbr.bin address the disk by LBA.
"""

import struct
import sys

CHS_BEYOND = b"\xfe\xff\xff"


def main(argv):
    if len(argv) < 3 or len(argv) > 6:
        sys.exit(__doc__)
    entries = b""
    for spec in argv[2:]:
        active, kind, start, count = spec.split(":")
        entries += struct.pack(
            "<B3sB3sII",
            0x80 if active == "1" else 0,
            CHS_BEYOND,
            int(kind, 16),
            CHS_BEYOND,
            int(start),
            int(count),
        )
    entries = entries.ljust(64, b"\0")
    with open(argv[1], "r+b") as f:
        f.seek(446)
        f.write(entries + b"\x55\xaa")


if __name__ == "__main__":
    main(sys.argv)
