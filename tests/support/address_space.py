"""What a process's address space holds, for tests that set memory limits relative to a process's own size.

Module-level so a confined child or a pool process can run it.
"""

from __future__ import annotations


def address_space_mb(_: object = None) -> int:
    """This process's virtual size (VmSize) in MiB: what RLIMIT_AS counts."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) // 1024
