"""How much memory a new array may take here: what ``shards.Inputs.load`` checks first."""
from __future__ import annotations

import os

from .._threads import _cgroup_dirs, _read


def available_memory(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup",
                     meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes free for a new array: Linux's MemAvailable, capped by this process's cgroup memory
    limit less its usage (v2 ``memory.max``, v1 ``memory.limit_in_bytes``); None where unknown."""
    free = []
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:") and line.split()[1].isdigit():
            free.append(int(line.split()[1]) * 1024)
    pairs = [(d, "memory.max", "memory.current") for d in _cgroup_dirs(root, proc_cgroup, None)]
    pairs += [(d, "memory.limit_in_bytes", "memory.usage_in_bytes")
              for d in _cgroup_dirs(os.path.join(root, "memory"), proc_cgroup, "memory")]
    for folder, limit, used in pairs:
        cap, now = _read(os.path.join(folder, limit)), _read(os.path.join(folder, used))
        if cap and cap.isdigit() and int(cap) < 2**60:  # v1 writes "no limit" as a huge number
            free.append(max(int(cap) - int(now if now and now.isdigit() else 0), 0))
    return min(free) if free else None
