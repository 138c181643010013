"""A busy neighbour for ``m5l-bench --background-threads N``: a torch matmul loop in another process.

On a robot the tracker shares the CPU with other nodes. This starts one process that keeps
``threads`` torch threads busy (1024x1024 float32 matmuls, as a perception or planning node
might), so the benchmark can time the tracker quiet and beside it, back to back.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

BUSY_LOOP = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(1024, 1024)
print("busy", flush=True)
while True:
    a = torch.tanh(a @ a)
"""


@contextlib.contextmanager
def busy_process(threads: int) -> Iterator[subprocess.Popen]:
    """A running busy process for the duration of the block (stopped and reaped afterwards)."""
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(threads)], stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    try:
        process.stdout.readline()   # torch imported and looping
        time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        process.wait()
