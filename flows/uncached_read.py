"""A big file read once from end to end, past the page cache where the system allows it.

The check that a grown export still begins with the bytes last read reads all of them (6.3 GB at 20M
residents, every two hours). Through the page cache this machine read 650 MB/s, the kernel copying each page
(0.9 s of system time a GB) and pushing out pages the rest of the refresh reads; with O_DIRECT it read
1.6-1.7 GB/s with next to no system time, as fast as SHA-256 hashed there (on a later machine 1.2 GB/s, SHA-256
0.9: the bytes are now hashed by XXH3, flows.readers._hasher, and the disk sets the pace).
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

BLOCK = 1 << 24  # bytes a read: a multiple of any device's logical block size, as O_DIRECT needs


def cached_blocks(path: Path, start: int = 0, size: int = BLOCK) -> Iterator[bytes]:
    """The file's bytes from start on, size at a time, through the page cache."""
    with open(path, "rb") as fh:
        fh.seek(start)
        while block := fh.read(size):
            yield block


def uncached_blocks(path: Path) -> Iterator[memoryview | bytes]:
    """The file's bytes a block at a time. A block stays as it is until the next but one is asked for (two
    buffers take turns: one may be hashed by another thread while the next is read into the other), so a
    caller keeping bytes from a block copies them. Falls back to reading through the page cache where the
    file system refuses O_DIRECT (tmpfs, for one)."""
    flag = getattr(os, "O_DIRECT", 0)
    try:
        fd = os.open(path, os.O_RDONLY | flag) if flag else None
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        fd = None
    if fd is None:
        yield from cached_blocks(path)
        return
    buffers = (mmap.mmap(-1, BLOCK), mmap.mmap(-1, BLOCK))  # page-aligned, as O_DIRECT needs
    at, turn = 0, 0
    try:
        while True:
            buffer, turn = buffers[turn], turn ^ 1
            try:
                n = os.preadv(fd, [buffer], at)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                yield from cached_blocks(path, at)
                return
            if n == 0:
                return
            yield memoryview(buffer)[:n]
            at += n  # after a short read (the end, or a file still growing) the next one may be refused: see above
    finally:
        os.close(fd)
