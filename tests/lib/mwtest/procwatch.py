"""procwatch: what soak tests watch in a daemon (milter-auth, policyd-rate,
milter-pgp soak.py): its resident memory sampled while it works, and its
file descriptors before and after.

    rss = []
    ... every second: rss.append(rss_kb(pid))
    check_rss_flat(t, PROGRAM, rss)
    check_fds_back(t, pid, before)
"""
import os
import re
import subprocess

from . import sandbox


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def sanitized(program):
    """Built with ASan: it keeps freed memory in quarantine (RSS grows by
    design) and LeakSanitizer reports leaks at exit instead."""
    return "libasan" in subprocess.run(["readelf", "-d", program], capture_output=True, text=True).stdout


def check_rss_flat(t, program, rss, limit_kb=4096):
    """Memory flat after warm-up (the first 40 %: caches, thread stacks and
    allocator arenas fill first): the median of the last 30 % of the
    samples against that of the 30 % before it; a leak of a few hundred
    bytes per message over hundreds of messages shows. Skipped for an ASan
    build."""
    if sanitized(program):
        t.skip("RSS flat after warm-up", "ASan build: freed memory stays in quarantine; LeakSanitizer checks at exit")
        return
    n = len(rss)
    early, late = sorted(rss[int(n * 0.4):int(n * 0.7)]), sorted(rss[int(n * 0.7):])
    if not early or not late:
        t.ok(False, "RSS flat after warm-up: too few samples (%d)" % n)
        return
    growth = late[len(late) // 2] - early[len(early) // 2]
    t.ok(growth < limit_kb, "RSS flat after warm-up: median grew %d kB (%d -> %d)"
         % (growth, early[len(early) // 2], late[len(late) // 2]))


def check_fds_back(t, pid, before, timeout=60):
    """The daemon's descriptors back to at most before (waits: connections
    close a little after the last client)."""
    try:
        sandbox.wait_for(lambda: fds(pid) <= before, timeout, interval=0.5, what="descriptors back")
    except TimeoutError:
        pass
    t.ok(fds(pid) <= before, "file descriptors back to where they were (%d, before %d)" % (fds(pid), before))
