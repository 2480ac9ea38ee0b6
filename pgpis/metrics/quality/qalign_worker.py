"""Q-Align (OneAlign) scorer for pgpis, run by the Q-Align environment's own Python (not pgpis's).

    qalign-env/bin/python qalign_worker.py --model q-future/one-align --trust-remote-code [--device cuda]

Speaks pgpis's JSON-lines protocol (see pgpis/metrics/quality/worker.py): one ready
line, then for each request line ``{"id", "path", "tasks"}`` one reply with
``{"quality": s, "aesthetics": s}`` in 1..5. Batch size 1, as Q-Align scores.

Backends (``--backend``): ``transformers`` is the model card's route,
``AutoModelForCausalLM.from_pretrained(model, trust_remote_code=True, torch_dtype=float16)``
then ``model.score([image], task_=..., input_="image")``; ``pyiqa`` is
``pyiqa.create_metric("qalign")`` called with ``task_="quality"|"aesthetic"``.
Both run the model repository's mPLUG-Owl2 code, so either needs ``--trust-remote-code``.

Imports only the standard library at start-up, so it can report what is missing in
that environment (a package, the model, the opt-in) as one "unavailable" line
instead of a traceback. Library output that goes to stdout is sent to stderr:
stdout carries the protocol only.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from importlib import metadata

HUB_ID = "q-future/one-align"
PROTOCOL = 1
SETUP = ('python -m venv qalign-env && qalign-env/bin/pip install torch "transformers==4.37.2" accelerate '
         'sentencepiece protobuf pillow icecream')
PYIQA_TASK = {"quality": "quality", "aesthetics": "aesthetic"}  # pyiqa spells the IAA task "aesthetic"
_TRUE = {"1", "true", "yes", "on"}


def protocol_stream():
    """A private copy of stdout for the protocol; fd 1 (and sys.stdout) then point at stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def emit(stream, obj: dict) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def is_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.path.isdir(os.path.expanduser(model)) or model.count("/") > 1


def offline_vars() -> list[str]:
    """The set offline switches (huggingface_hub's, transformers', pgpis's)."""
    return [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PGPIS_OFFLINE")
            if os.environ.get(v, "").strip().lower() in _TRUE]


def environment_problems(args: argparse.Namespace) -> list[str]:
    """Everything that stops scoring here, each with its fix (empty: go ahead)."""
    problems = []
    py = sys.executable
    for module in ("torch", "transformers", "PIL", "huggingface_hub") + (("pyiqa",) if args.backend == "pyiqa" else ()):
        if importlib.util.find_spec(module) is None:  # found, not imported: torch alone takes seconds
            problems.append(f"{py} has no {module}; install the Q-Align environment: `{SETUP}`"
                            + (" && qalign-env/bin/pip install pyiqa" if module == "pyiqa" else ""))
    try:
        version = metadata.version("transformers")
        if int(version.split(".")[0]) >= 5:
            problems.append(f"{py} has transformers {version}; Q-Align's mPLUG-Owl2 model code imports "
                            f"transformers 4.3x internals (pyiqa pins 4.37.2): use an environment with "
                            f"`pip install \"transformers==4.37.2\"`")
    except (metadata.PackageNotFoundError, ValueError):
        pass  # reported above
    model = os.path.expanduser(args.model)
    if is_local(args.model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            problems.append(f"model folder {args.model} has no config.json; make it with "
                            f"`hf download {HUB_ID} --local-dir {args.model}`")
    elif offline_vars():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(args.model, "config.json")
            if not isinstance(cached, str):
                from huggingface_hub.constants import HF_HUB_CACHE

                switches = "=1, ".join(offline_vars()) + "=1"
                problems.append(f"{args.model} is not in the Hugging Face cache of {py} ({HF_HUB_CACHE}) and "
                                f"{switches} (offline): fetch it once online with `hf download {args.model}` "
                                f"(about 16 GB), or pass a local folder as --qalign-model")
        except ImportError:
            pass  # reported above
    if not args.trust_remote_code:
        problems.append("Q-Align's model class is Python code from the model repository (mPLUG-Owl2, "
                        "trust_remote_code); pgpis runs it only when asked: pass --trust-remote-code to pgpis "
                        "evaluate (or set PGPIS_QALIGN_TRUST_REMOTE_CODE=1)")
    return problems


def redirect_hub_id(local: str) -> None:
    """Resolve the literal hub id to `local` in from_pretrained: the model's own __init__ (and pyiqa) load the
    tokenizer, image processor and weights by ``q-future/one-align``, which a local copy must stand in for."""
    import transformers

    for cls in (transformers.AutoTokenizer, transformers.CLIPImageProcessor, transformers.AutoModelForCausalLM):
        original = cls.from_pretrained

        def patched(name, *a, _original=original, **k):
            return _original(local if str(name) == HUB_ID else name, *a, **k)

        cls.from_pretrained = staticmethod(patched)


def load_scorer(args: argparse.Namespace):
    """(score(path, task) -> float, backend description)."""
    import torch
    import transformers
    from PIL import Image

    device = args.device
    if device == "auto":  # under torchrun each rank's worker takes that rank's GPU
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = (f"cuda:{rank if rank < torch.cuda.device_count() else 0}" if torch.cuda.is_available() else "cpu")
    if is_local(args.model):
        redirect_hub_id(os.path.expanduser(args.model))
    if args.backend == "pyiqa":
        import pyiqa

        metric = pyiqa.create_metric("qalign", device=device)

        def score(path: str, task: str) -> float:
            return float(metric(path, task_=PYIQA_TASK[task]).reshape(-1)[0])

        return score, f"{HUB_ID} (pyiqa {pyiqa.__version__} qalign, transformers {transformers.__version__}, {device})"

    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.expanduser(args.model) if is_local(args.model) else args.model,
        trust_remote_code=True, torch_dtype=torch.float16, device_map=device)
    model.eval()

    def score(path: str, task: str) -> float:
        with Image.open(path) as im:
            image = im.convert("RGB")
        return float(model.score([image], task_=task, input_="image").reshape(-1)[0])

    return score, f"{args.model} (model.score, transformers {transformers.__version__}, {device} float16)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Q-Align scorer speaking pgpis's JSON-lines protocol")
    p.add_argument("--model", default=HUB_ID, help="hub id or local folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", choices=("transformers", "pyiqa"), default="transformers")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model repository's Python code")
    args = p.parse_args(argv)
    out = protocol_stream()
    problems = environment_problems(args)
    if problems:
        emit(out, {"unavailable": "; ".join(problems)})
        return 0
    try:
        score, backend = load_scorer(args)
    except ImportError as err:  # a module the model's code imports and this environment lacks
        emit(out, {"unavailable": f"loading {args.model} in {sys.executable} needs a missing module ({err}); "
                                  f"pip install it into that environment"})
        return 0
    except Exception as err:  # noqa: BLE001 -- reported to pgpis, which raises a named error
        emit(out, {"error": f"loading {args.model} failed: {type(err).__name__}: {err}"})
        return 1
    emit(out, {"ready": True, "protocol": PROTOCOL, "backend": backend})
    for line in sys.stdin:
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            rid = req["id"]
            scores = {task: score(req["path"], task) for task in req["tasks"]}
            bad = {t: v for t, v in scores.items() if not math.isfinite(v)}
            if bad:
                raise ValueError(f"non-finite score {bad}")
            emit(out, {"id": rid, "scores": scores})
        except Exception as err:  # noqa: BLE001 -- one reply per request, the error named
            emit(out, {"id": rid, "error": f"{type(err).__name__}: {err}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
