"""Exports in another encoding made UTF-8, a GB18030 one by two processes at once, each taking half of it.

Python's decoder holds the interpreter's lock, so transcoding a city's test and vaccination exports (8.9 GB of
GB18030 at 20M residents) kept one core of two busy for about 45 s before the first row could be read.
GB18030 never uses byte 0x0A inside a character, so the file is cut after a line break near its middle, and
each half decoded alone gives what decoding the whole gives; the halves' UTF-8 is then put together in order.
A half is decoded by a small Python process started from this file (it imports nothing but the standard
library), which writes its UTF-8 to a file and prints where the first byte it cannot decode is, if any.
"""

from __future__ import annotations

import codecs
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 24
MIN_SPLIT = 64 << 20  # smaller files are decoded in one piece: starting a process costs more than it saves
SPLIT_ENCODINGS = ("gb18030",)  # encodings where a line break byte is never part of another character


def decode_error(blocks: Iterable[bytes], encoding: str, start: int, out: BinaryIO | None = None,
                 each: Callable[[bytes], None] | None = None) -> int | None:
    """Decodes blocks (a file's bytes from byte `start` on), writing them as UTF-8 to out if given; returns the
    byte offset of the first sequence that is not valid in encoding, or None. A block may end inside a
    character: the decoder carries its first bytes over, and an error is placed where they began. each: is
    given every block as it is read."""
    decoder = codecs.getincrementaldecoder(encoding)()
    at = start
    for block in itertools.chain(blocks, [b""]):  # one block in memory at a time
        if each is not None and block:
            each(block)
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            return at - pending + exc.start
        if out is not None:
            out.write(text.encode("utf-8"))
        at += len(block)
    return None


def range_blocks(path: Path, start: int, end: int, size: int = BLOCK) -> Iterator[bytes]:
    """The file's bytes [start, end), size at a time."""
    with open(path, "rb") as fh:
        fh.seek(start)
        while start < end and (block := fh.read(min(size, end - start))):
            start += len(block)
            yield block


def halves(path: Path, encoding: str) -> list[tuple[int, int]]:
    """The byte ranges the file is decoded in: two, cut after the first line break past its middle, for a large
    file in an encoding that allows it; else the whole file."""
    size = path.stat().st_size
    if encoding not in SPLIT_ENCODINGS or size < MIN_SPLIT:
        return [(0, size)]
    with open(path, "rb") as fh:
        fh.seek(size // 2)
        near = fh.read(1 << 20)
    cut = near.find(b"\n")
    if cut < 0 or size // 2 + cut + 1 >= size:
        return [(0, size)]
    return [(0, size // 2 + cut + 1), (size // 2 + cut + 1, size)]


def transcode(path: Path, encoding: str, text: Path, each: Callable[[bytes], None], size: int = BLOCK) -> int | None:
    """The file as UTF-8 in `text`; returns decode_error's offset of the first byte that is not `encoding`, or
    None. each: given every block of the file, in order (read here while the halves are decoded). size: the
    bytes read at a time."""
    parts = halves(path, encoding)
    if len(parts) == 1:
        with open(text, "wb") as out:
            return decode_error(range_blocks(path, 0, parts[0][1], size), encoding, 0, out, each)
    outputs = [text, text.with_name(text.name + ".second")]
    workers = [subprocess.Popen([sys.executable, "-I", "-S", __file__, str(path), encoding, str(a), str(b), str(o),
                                 str(size)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for (a, b), o in zip(parts, outputs, strict=True)]
    try:
        for block in range_blocks(path, 0, parts[-1][1], size):
            each(block)
        found = []
        for worker in workers:
            said, err = worker.communicate()
            if worker.returncode != 0:
                raise RuntimeError(f"transcoding {path} failed: {err.decode(errors='replace').strip()}")
            found.append(None if said.strip() == b"ok" else int(said))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    bad = next((at for at in found if at is not None), None)  # the first half's error comes first in the file
    if bad is None:
        _append(outputs[0], outputs[1])
    outputs[1].unlink(missing_ok=True)
    return bad


def _append(to: Path, source: Path) -> None:
    """source's bytes at the end of to: copied by the kernel where it can, else read and written."""
    fd_out, fd_in = os.open(to, os.O_WRONLY), os.open(source, os.O_RDONLY)
    try:
        os.lseek(fd_out, 0, os.SEEK_END)
        left = os.fstat(fd_in).st_size
        try:
            while left > 0 and (n := os.copy_file_range(fd_in, fd_out, left)) > 0:
                left -= n
        except OSError:
            pass  # not across these file systems: the rest is copied below, from where the kernel stopped
        while chunk := os.read(fd_in, BLOCK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view):]
    finally:
        os.close(fd_in)
        os.close(fd_out)


def main(argv: list[str]) -> int:
    path, encoding, start, end, out, size = Path(argv[0]), argv[1], int(argv[2]), int(argv[3]), Path(argv[4]), int(argv[5])
    with open(out, "wb") as fh:
        bad = decode_error(range_blocks(path, start, end, size), encoding, start, fh)
    sys.stdout.write("ok\n" if bad is None else f"{bad}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
