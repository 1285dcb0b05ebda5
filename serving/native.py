"""Helpers for native (C/C++) libraries that write to the process's stderr directly."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level writes to stderr (fd 2) for the duration: llama.cpp prints load-time
    notices (context, LoRA buffer fallbacks) even with verbose=False. Failures still reach the
    caller as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
