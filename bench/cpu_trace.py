"""How many cores a command kept busy, over time: the machine's /proc/stat sampled while it runs, so a stage
where one core of two sat idle shows (a profile of one process does not show the others' time, nor the idle).

    python bench/cpu_trace.py [--every 0.5] [--out trace.csv] -- python bench/next_batch.py ...

Writes one row per sample: the wall-clock time (to line up with the command's log), and the cores busy
since the sample before (user, system and the rest of the busy kinds, out of the machine's cores), then
prints the command's mean. The whole machine is counted: run it on a machine doing nothing else.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import threading
from datetime import datetime

_BUSY = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest time is inside user)


def cpu_jiffies() -> tuple[int, int, int]:
    """(busy, kernel, all) jiffies of all cores since boot, from /proc/stat's first line."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:9]]
    return sum(fields[i] for i in _BUSY), fields[2], sum(fields)


def cores_busy(before: tuple[int, int, int], after: tuple[int, int, int], kind: int = 0) -> float:
    """Cores kept busy between two cpu_jiffies readings (kind 0: busy, 1: in the kernel), out of the machine's."""
    return (os.cpu_count() or 1) * (after[kind] - before[kind]) / max(after[2] - before[2], 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    ap.add_argument("--out", default="cpu_trace.csv")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given (put it after --)")
    rows: list[tuple[str, float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        last = cpu_jiffies()
        while not stop.wait(args.every):
            now = cpu_jiffies()
            rows.append((datetime.now().strftime("%H:%M:%S.%f")[:-3], round(cores_busy(last, now), 2),
                         round(cores_busy(last, now, 1), 2)))
            last = now

    start = cpu_jiffies()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = subprocess.call(command)
    stop.set()
    thread.join()
    end = cpu_jiffies()
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["time", "cores_busy", "cores_in_kernel"])
        out.writerows(rows)
    print(f"cpu_trace: {len(rows)} samples in {args.out}; {cores_busy(start, end):.2f} of {os.cpu_count() or 1} cores "
          "busy on average", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
