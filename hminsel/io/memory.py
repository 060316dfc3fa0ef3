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
    groups = [(d, "memory.max", "memory.current", "inactive_file")
              for d in _cgroup_dirs(root, proc_cgroup, None)]
    groups += [(d, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
               for d in _cgroup_dirs(os.path.join(root, "memory"), proc_cgroup, "memory")]
    for folder, limit, used, cache in groups:
        cap, now = _read(os.path.join(folder, limit)), _read(os.path.join(folder, used))
        if not (cap and cap.isdigit() and int(cap) < 2**60):  # v1: "no limit" is a huge number
            continue
        now = int(now) if now and now.isdigit() else 0
        # the usage counts page cache the kernel can drop (the shards' own pages, once read):
        # less its inactive part, as docker and Kubernetes count memory in use
        for line in (_read(os.path.join(folder, "memory.stat")) or "").splitlines():
            key, _, value = line.partition(" ")
            if key == cache and value.strip().isdigit():
                now = max(now - int(value), 0)
        free.append(max(int(cap) - now, 0))
    return min(free) if free else None
