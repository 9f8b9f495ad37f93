"""Process-wide runtime tuning shared by the gateway's workers and the actors: the garbage collector.

CPython's cycle collector runs a generation-0 pass every 700 net allocations of tracked objects and, every tenth
of those, a generation-1 pass; a full pass walks every object the process holds. A gateway worker answering
webhooks allocates a few hundred objects per request (the parsed body, pydantic models, futures, frames) and holds
~140,000 from its imports: measured on 2 cores under `wrk` with one worker, the collector took 13 % of the wall
time (0.65 s in 5 s; ~500 collections a second, two of them full). Almost all of those objects die by reference
counting, so collections rarely find anything. `tune_gc` moves what start-up made into the permanent generation
(`gc.freeze`: never walked again) and collects generation 0 every `PAYRISK_GC_THRESHOLD` (default 20,000)
net allocations instead: a handful of collections a minute. `PAYRISK_GC_THRESHOLD=0` keeps Python's defaults
(the gateway reads it from its settings, an actor from the config the actor system gives it).
"""

from __future__ import annotations

import gc

DEFAULT_THRESHOLD = 20_000


def tune_gc(threshold: int = DEFAULT_THRESHOLD) -> int:
    """Freeze what exists now and set the generation-0 threshold; returns the threshold set (0: left alone).
    Call it once start-up is done (imports made, pools opened)."""
    if threshold <= 0:
        return 0
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)
    return threshold
