"""`pgpis evaluate`'s IQA / IAA flags, for every dataset: the argument group, the settings, the printed table."""
from __future__ import annotations

import argparse
from typing import Mapping

from pgpis.metrics.quality.scoring import quality_table
from pgpis.metrics.quality.settings import BACKENDS, HUB_ID, QAlignSettings

NOT_REQUESTED = "not requested (--quality none)"


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared flags (also read from PGPIS_QALIGN_*; the flag wins)."""
    g = parser.add_argument_group("IQA / IAA (Q-Align in its own Python environment; docs/iqa.md)")
    g.add_argument("--quality", choices=("qalign", "none"), default="qalign",
                   help="score no-reference quality and aesthetics of the generated and ground-truth images "
                        "(default qalign: reported unavailable, with the reason, when it cannot run)")
    g.add_argument("--qalign-python", default=None, metavar="PATH",
                   help="the Q-Align environment's python (transformers 4.37.2; $PGPIS_QALIGN_PYTHON)")
    g.add_argument("--qalign-model", default=None, metavar="ID_OR_DIR",
                   help=f"hub id or local folder ($PGPIS_QALIGN_MODEL; default {HUB_ID})")
    g.add_argument("--qalign-device", default=None, metavar="DEV",
                   help="device in the worker ($PGPIS_QALIGN_DEVICE; default auto)")
    g.add_argument("--qalign-backend", choices=BACKENDS, default=None,
                   help="model card's model.score, or pyiqa.create_metric('qalign') ($PGPIS_QALIGN_BACKEND)")
    g.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="let the worker run the model repository's Python code (mPLUG-Owl2), which Q-Align "
                        "needs ($PGPIS_QALIGN_TRUST_REMOTE_CODE=1)")
    g.add_argument("--qalign-worker", default=None, metavar="SCRIPT",
                   help="a scorer speaking the same JSON-lines protocol ($PGPIS_QALIGN_WORKER)")
    g.add_argument("--qalign-timeout", type=float, default=None, metavar="S", help="seconds per image (default 300)")
    g.add_argument("--qalign-start-timeout", type=float, default=None, metavar="S",
                   help="seconds to load the model (default 1800)")


def settings_from_args(args: argparse.Namespace) -> QAlignSettings | str:
    """The settings the flags (then the environment) give, or the reason scoring is off."""
    if getattr(args, "quality", "qalign") == "none":
        return NOT_REQUESTED
    return QAlignSettings.from_env(
        python=getattr(args, "qalign_python", None), model=getattr(args, "qalign_model", None),
        device=getattr(args, "qalign_device", None), backend=getattr(args, "qalign_backend", None),
        trust_remote_code=getattr(args, "trust_remote_code", None), worker=getattr(args, "qalign_worker", None),
        image_timeout_s=getattr(args, "qalign_timeout", None), start_timeout_s=getattr(args, "qalign_start_timeout", None))


def quality_lines(rows: Mapping[str, object]) -> str | None:
    """The IQA / IAA table for ``{method name: EvaluationResult}`` (the first one's ground truth), or None
    when :func:`pgpis.metrics.evaluate.evaluate_pairs` did not score them."""
    pairs = {name: (r.metrics, r.unavailable) for name, r in rows.items()}  # type: ignore[attr-defined]
    first_metrics, first_unavailable = next(iter(pairs.values()), ({}, {}))
    if "iqa_ground_truth" not in first_metrics and "iqa_ground_truth" not in first_unavailable:
        return None  # not scored, or a dataset whose own table has the columns (wpose: a ground-truth row)
    backend = first_metrics.get("quality_backend")
    return quality_table(pairs, backend if isinstance(backend, str) else None)
