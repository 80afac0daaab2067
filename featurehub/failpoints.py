"""Named points where a test can kill this process, to prove a protocol survives it.

`FEATUREHUB_KILL_AT=<name>` makes the process SIGKILL itself when it reaches that point, as
an out-of-memory kill or a node loss would: no cleanup, no finally blocks. Unset, a point
costs one dictionary look-up. The points are listed where they are reached.
"""

from __future__ import annotations

import os
import signal


def reach(name: str) -> None:
    if os.environ.get("FEATUREHUB_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
