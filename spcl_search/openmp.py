"""How torch's OpenMP threads wait: spin on an idle machine, sleep on a busy one.

torch's CPU build runs its thread pool on GNU OpenMP, which reads ``OMP_WAIT_POLICY`` and
``GOMP_SPINCOUNT`` once, when torch is loaded. Between parallel regions an idle thread either spins
(default, about 300k iterations) or sleeps (``PASSIVE``). Which is right depends on the machine:

Measured (MMGCN, MELD-surrogate, batch 16, 2 threads, one training epoch, 2-core machine):

=========================  ============  =================================
wait policy                idle machine  two other busy processes running
=========================  ============  =================================
spin (libgomp default)     2.5 s         25.5 s
``GOMP_SPINCOUNT=10000``   2.4 s         14.3 s
``PASSIVE``                5.7 s         6.2 s
=========================  ============  =================================

A spinning pool that shares its cores with other work waits on threads that are not scheduled, so it
loses 4-10x; a sleeping pool on an idle machine pays a wake-up per operator, so it loses 2.3x. The
command line's entry point picks (:func:`apply_at_entry`, before torch is loaded): ``PASSIVE`` when fewer than two cores are free
of other running processes, the default otherwise. The launcher makes the same choice for the workers
it starts (:func:`oversubscribed`). Setting either variable yourself always wins.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import MutableMapping

#: the variables that decide the policy; if the user set either, we leave both alone
POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def running_elsewhere(samples: int = 7, interval: float = 0.002, path: str = "/proc/loadavg") -> float | None:
    """Processes running right now besides this one (median of a few reads of ``/proc/loadavg``).

    ``None`` where the file does not exist (not Linux) or cannot be parsed.
    """
    counts = []
    for i in range(samples):
        try:
            with open(path) as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(running - 1)  # the reader itself is running
        if i + 1 < samples:
            time.sleep(interval)
    return max(0.0, statistics.median(counts))


def oversubscribed(busy: float, threads: int, cpus: int) -> bool:
    """True when ``threads`` more threads would not each find a free core among ``cpus``."""
    return busy + threads > cpus


def choose_wait_policy(environ: MutableMapping[str, str], busy: float | None, cpus: int) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` if the machine is busy; returns what was set.

    ``busy``: other processes running (``None``: unknown, leave the default). Two threads is torch's
    smallest pool, so "busy" means fewer than two free cores.
    """
    if any(v in environ for v in POLICY_VARS) or busy is None:
        return None
    if oversubscribed(busy, min(2, cpus), cpus):
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return None


def apply_at_entry() -> str | None:
    """Choose the policy for this process unless torch is already loaded (then it is too late)."""
    if "torch" in sys.modules or any(v in os.environ for v in POLICY_VARS):
        return None
    return choose_wait_policy(os.environ, running_elsewhere(), os.cpu_count() or 1)


__all__ = ["POLICY_VARS", "apply_at_entry", "choose_wait_policy", "oversubscribed", "running_elsewhere"]
