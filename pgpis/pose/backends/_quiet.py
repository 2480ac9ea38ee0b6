"""Filter the known start-up chatter MediaPipe's C++ side writes straight to file descriptor 2.

MediaPipe logs through absl/glog and TF-Lite, which read their level from the environment at process start
(``GLOG_minloglevel`` set from Python is too late), so the only way to quiet them from inside is to catch
fd 2 around a call and write back every line that is not known noise. Nothing else is dropped.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

NOISE = (
    b"inference_feedback_manager.cc",
    b"landmark_projection_calculator.cc",
    b"Created TensorFlow Lite XNNPACK delegate",
    b"All log messages before absl::InitializeLog()",
    b"gl_context",
)


@contextmanager
def filtered_native_stderr(enabled: bool = True, noise: tuple[bytes, ...] = NOISE) -> Iterator[None]:
    """Run the body with fd 2 captured; afterwards re-emit every captured line not containing ``noise``."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (a detached process): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().splitlines(keepends=True) if not any(n in line for n in noise)]
            if kept:
                os.write(2, b"".join(kept))
