"""A stand-in for pgpis/metrics/quality/qalign_worker.py: the same JSON-lines protocol, known scores.

Run by tests with sys.executable as the "Q-Align python". Scores come from the image's
mean brightness m in [0, 255]: quality = 1 + 4 m / 255, aesthetics = 5 - 4 m / 255, so
every number pgpis reports can be computed by hand. QALIGN_STANDIN_MODE picks a
behaviour: ok (default), unavailable, crash-at-start, crash-after-one, garbage,
noisy-stdout, hang, out-of-range, wrong-id. QALIGN_STANDIN_LOG, if set, names a file
that gets one line per scored path (to check what pgpis sent).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image


def scores_of(path: str) -> dict[str, float]:
    with Image.open(path) as im:
        m = float(np.asarray(im.convert("RGB"), dtype=np.float64).mean())
    return {"quality": 1 + 4 * m / 255, "aesthetics": 5 - 4 * m / 255}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--device")
    p.add_argument("--backend")
    p.add_argument("--trust-remote-code", action="store_true")
    args = p.parse_args()
    mode = os.environ.get("QALIGN_STANDIN_MODE", "ok")
    log = os.environ.get("QALIGN_STANDIN_LOG")
    say = lambda obj: print(json.dumps(obj), flush=True)  # noqa: E731
    if mode == "crash-at-start":
        print("Traceback (most recent call last):\nRuntimeError: CUDA out of memory (stand-in)", file=sys.stderr)
        return 3
    if mode == "unavailable":
        say({"unavailable": f"stand-in: {args.model} is not here"})
        return 0
    if mode == "noisy-stdout":
        print("Loading checkpoint shards: 100%")  # what a library printing to stdout would do
    say({"ready": True, "protocol": 1, "backend": f"stand-in brightness scorer ({args.model})"})
    for n, line in enumerate(sys.stdin):
        req = json.loads(line)
        if log:
            with open(log, "a") as f:
                f.write(req["path"] + "\n")
        if mode == "crash-after-one" and n == 1:
            print("Segmentation fault (stand-in)", file=sys.stderr, flush=True)
            os._exit(139)
        if mode == "garbage":
            print("<html>502 Bad Gateway</html>", flush=True)
            continue
        if mode == "hang":
            time.sleep(60)
        scores = scores_of(req["path"])
        if mode == "out-of-range":
            scores["quality"] = 7.5
        say({"id": req["id"] + (1 if mode == "wrong-id" else 0), "scores": {t: scores[t] for t in req["tasks"]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
