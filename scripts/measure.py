#!/usr/bin/env python3
"""Runs a command and reports its wall time and peak RSS: the fallback of `scripts/bench.sh`
where GNU `/usr/bin/time -v` is missing. Standard library only.

    python3 scripts/measure.py RESULT_FILE -- COMMAND [ARGS...]

Writes `wall_seconds<TAB>max_rss_kib<TAB>exit_code<TAB>cpu_seconds` (user + system) to RESULT_FILE and exits with the
command's exit code. The peak RSS is `ru_maxrss` of RUSAGE_CHILDREN (KiB on Linux): the
largest resident set of any waited-for descendant, which is the command itself here, as the
measured programs are single processes (threads share one RSS).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    result_file, command = sys.argv[1], sys.argv[3:]
    started = time.perf_counter()
    code = subprocess.call(command)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(result_file, "w", encoding="utf-8") as f:
        f.write(f"{wall:.3f}\t{usage.ru_maxrss}\t{code}\t{usage.ru_utime + usage.ru_stime:.2f}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
