"""Peak memory of the benchmark process, shared by the benchmarks that report it."""

import resource
import sys


def peak_gib() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 30 if sys.platform == "darwin" else 1 << 20)
