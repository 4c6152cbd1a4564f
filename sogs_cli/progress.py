"""Progress of one scene's stages on stderr."""
from __future__ import annotations

import sys
import time


class StageProgress:
    """Prints each stage's progress on stderr: a live percentage on a terminal, else one line
    per stage when it finishes (so logs of batch runs stay readable), with the seconds since the
    scene began: a stage that reports only its end has no start of its own to count from, and the
    stages' own seconds are printed at the end."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.stage = None
        self.began = self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.started = stage, now
        if self.tty and (now - self.last > 0.1 or fraction >= 1.0):
            self.stream.write(f"\r  {stage:<8} {fraction * 100:5.1f}%  {now - self.started:6.1f}s")
            self.last = now
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
        elif not self.tty and fraction >= 1.0:
            self.stream.write(f"  {stage:<8} done at {now - self.began:.2f}s\n")
            self.stream.flush()
