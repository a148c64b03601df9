"""Many hard links made by a process of its own, in one call from the flow.

Each os.link lets go of the interpreter's lock and must take it back: beside any thread running Python, a
link waits for it. In a 20M two-hour refresh the 118,000 unchanged books and pages linked from the last output
took about 100 µs each (11 s, batch 136) where alone they take 5; beside a thread spinning in Python, 2.5-3.4
ms each. The child process has no other thread: 50,000 links take a few tenths of a second there.
"""

from __future__ import annotations

import os
import subprocess
import sys

# The child: records (R|L, source, target) separated by NUL bytes on stdin; R removes the target first (an
# empty file from the pool). Prints the numbers of the records whose source is gone; any other failure is
# the run's (exit 1, the error on stderr). Across file systems the file is copied, as hard_link does.
_CHILD = r"""
import os, shutil, sys
data = sys.stdin.buffer.read().split(b"\0")
gone = []
for i in range(0, len(data) - 2, 3):
    flag, source, target = data[i], data[i + 1], data[i + 2]
    if flag == b"R":
        os.unlink(target)
    try:
        os.link(source, target)
    except FileNotFoundError:
        gone.append(str(i // 3))
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system
            raise
        shutil.copyfile(source, target)
sys.stdout.write(" ".join(gone))
"""


def link_all(links: list[tuple[str, str, bool]]) -> set[int]:
    """links: (source, target, remove the target first). Returns the positions of those whose source is gone
    (the caller writes them anew); raises OSError for any other failure, naming the child's error."""
    if not links:
        return set()
    payload = b"\0".join(b"\0".join((b"R" if remove else b"L", os.fsencode(source), os.fsencode(target)))
                         for source, target, remove in links) + b"\0"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD], input=payload, capture_output=True,
                          check=False)
    if done.returncode:
        last = done.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(f"linking {len(links)} unchanged files from the last output failed: "
                      f"{last[-1] if last else done.returncode}")
    return {int(n) for n in done.stdout.split()}
