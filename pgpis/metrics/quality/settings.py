"""Where the Q-Align scorer runs: its own Python, model, device, and the opt-in to run the model's code.

Q-Align (OneAlign, ``q-future/one-align``) is an mPLUG-Owl2 model whose class is
Python code in the model repository (``trust_remote_code``) written against
transformers 4.3x; pgpis runs on transformers 5.x. So the model runs in a second
Python environment, driven by :mod:`pgpis.metrics.quality.qalign_worker` over
JSON lines (see docs/iqa.md). These settings say which one; everything that is
missing becomes the reason IQA / IAA are reported unavailable.

Settings come from the caller (``pgpis evaluate`` flags) or the environment:
``PGPIS_QALIGN_PYTHON``, ``PGPIS_QALIGN_MODEL``, ``PGPIS_QALIGN_DEVICE``,
``PGPIS_QALIGN_BACKEND``, ``PGPIS_QALIGN_TRUST_REMOTE_CODE``, ``PGPIS_QALIGN_WORKER``.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Iterator, Literal, Mapping

HUB_ID = "q-future/one-align"
WORKER = Path(__file__).with_name("qalign_worker.py")
BACKENDS = ("transformers", "pyiqa")
_TRUE = {"1", "true", "yes", "on"}
SETUP = ('python -m venv qalign-env && qalign-env/bin/pip install torch "transformers==4.37.2" accelerate '
         'sentencepiece protobuf pillow icecream')


@dataclass(frozen=True)
class QAlignSettings:
    """How to reach a Q-Align scorer. ``python=None``: not configured (IQA / IAA unavailable, with how to set it up)."""

    python: str | None = None  # the separate environment's interpreter
    model: str = HUB_ID  # hub id (from that environment's HF cache) or a local folder (`hf download ... --local-dir`)
    device: str = "auto"  # worker side: cuda if available, else cpu
    backend: Literal["transformers", "pyiqa"] = "transformers"  # model card's model.score, or pyiqa.create_metric('qalign')
    trust_remote_code: bool = False  # the model class is code from the model repo: run only when asked
    worker: str | None = None  # a script speaking the same JSON-lines protocol (default: the shipped worker)
    start_timeout_s: float = 1800.0  # loading a ~7B model from disk
    image_timeout_s: float = 300.0  # one image, both tasks

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "QAlignSettings":
        """Settings from ``PGPIS_QALIGN_*``; `overrides` that are not None win (CLI flags)."""
        env = os.environ if environ is None else environ
        base = cls(python=env.get("PGPIS_QALIGN_PYTHON") or None,
                   model=env.get("PGPIS_QALIGN_MODEL") or HUB_ID,
                   device=env.get("PGPIS_QALIGN_DEVICE") or "auto",
                   backend=env.get("PGPIS_QALIGN_BACKEND") or "transformers",  # type: ignore[arg-type]
                   trust_remote_code=env.get("PGPIS_QALIGN_TRUST_REMOTE_CODE", "").strip().lower() in _TRUE,
                   worker=env.get("PGPIS_QALIGN_WORKER") or None)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def label(self) -> str:
        """``<model> via <python>`` (the metrics.json ``quality_backend``)."""
        return f"{self.model} via {self.python}"


def _project_transformers() -> str:
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "none"


def looks_like_path(model: str) -> bool:
    """A local folder rather than a hub id ``owner/name`` (hub ids have exactly one '/', no leading '.', '/', '~')."""
    return model.startswith((".", "/", "~")) or os.sep in model.replace("/", "", 1) or Path(model).expanduser().is_dir()


def configuration_problem(s: QAlignSettings) -> str | None:
    """Why the scorer cannot even be started (None: start it; the worker checks its own environment)."""
    if s.python is None:
        return (f"Q-Align needs its own Python environment (its mPLUG-Owl2 model code targets transformers 4.3x; "
                f"this one has transformers {_project_transformers()}). Create it: `{SETUP}`, then pass "
                f"--qalign-python qalign-env/bin/python (or set PGPIS_QALIGN_PYTHON) and --trust-remote-code; "
                f"see docs/iqa.md")
    py = Path(s.python).expanduser()
    if not py.is_file() or not os.access(py, os.X_OK):
        return (f"--qalign-python / PGPIS_QALIGN_PYTHON '{s.python}' is not an executable file; point it at the "
                f"Q-Align environment's interpreter (e.g. qalign-env/bin/python, made with `{SETUP}`)")
    if s.backend not in BACKENDS:
        return f"Q-Align backend '{s.backend}' is not one of {', '.join(BACKENDS)}"
    if looks_like_path(s.model) and not Path(s.model).expanduser().is_dir():
        return (f"Q-Align model folder '{s.model}' does not exist; download it with "
                f"`hf download {HUB_ID} --local-dir DIR` (about 16 GB) or pass the hub id {HUB_ID}")
    worker = Path(s.worker) if s.worker else WORKER
    if not worker.is_file():
        return f"Q-Align worker script '{worker}' does not exist"
    return None


# --------------------------------------------------------------------------- ambient settings (the CLI's flags)
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("pgpis_quality", default=None)


@contextlib.contextmanager
def requested(settings: QAlignSettings | str) -> Iterator[None]:
    """Within the block, evaluations that were not told otherwise score IQA / IAA with `settings`.

    ``pgpis evaluate`` wraps each dataset's evaluation hook in this, so its flags reach
    :func:`pgpis.metrics.evaluate.evaluate_pairs` whatever the dataset. A string switches scoring
    off and is the reason reported (``--quality none``).
    """
    token = _CURRENT.set(settings)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def ambient() -> QAlignSettings | str | None:
    """The enclosing :func:`requested` block's value; outside one, settings from the environment when
    ``PGPIS_QALIGN_PYTHON`` is set (so ``pgpis test`` scores IQA / IAA once an environment is configured),
    else None (not requested: no IQA / IAA keys)."""
    current = _CURRENT.get()
    if current is not None:
        return current
    return QAlignSettings.from_env() if os.environ.get("PGPIS_QALIGN_PYTHON") else None
