"""Named points where a test can kill or pause this process, to prove a protocol survives it.

`FEATUREHUB_KILL_AT=<name>` makes the process SIGKILL itself when it reaches that point, as
an out-of-memory kill or a node loss would: no cleanup, no finally blocks.
`FEATUREHUB_PAUSE_AT=<name>:<seconds>` makes it sleep there, so a test can signal or kill it
in the middle of a step. Unset, a point costs two dictionary look-ups. The points are listed
where they are reached.
"""

from __future__ import annotations

import os
import signal
import time


def reach(name: str) -> None:
    if os.environ.get("FEATUREHUB_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("FEATUREHUB_PAUSE_AT")
    if pause is not None and pause.rpartition(":")[0] == name:
        time.sleep(float(pause.rpartition(":")[2]))
