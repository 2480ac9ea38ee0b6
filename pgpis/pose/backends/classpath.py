"""A user's own estimator by class path: ``"package.module.ClassName"`` (or ``"package.module:ClassName"``).

The class (or any callable returning an estimator) is imported and called with the options as keyword
arguments; what it returns must satisfy :class:`~pgpis.pose.estimate.PoseEstimator` (a ``name`` and
``estimate`` / ``estimate_batch``; subclassing PoseEstimator gives the default ``estimate_batch``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from pgpis.pose.errors import InvalidEstimator
from pgpis.pose.estimate import PoseEstimator


def split_class_path(path: str) -> tuple[str, str]:
    """``"a.b.C"`` / ``"a.b:C"`` -> ``("a.b", "C")``."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise InvalidEstimator(f"estimator {path!r}: not a class path. Fix: give 'package.module.ClassName' "
                               "(importable on PYTHONPATH) or a built-in name.")
    return module, attr


def import_object(path: str) -> Any:
    module_name, attr = split_class_path(path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidEstimator(f"estimator {path!r}: cannot import module {module_name!r} ({exc}). Fix: install "
                               "the package or add its folder to PYTHONPATH.") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidEstimator(f"estimator {path!r}: module {module_name!r} has no attribute {attr!r}. "
                                   "Fix: check the class name's spelling.")
        obj = getattr(obj, part)
    return obj


def missing_members(obj: Any) -> list[str]:
    """The PoseEstimator members ``obj`` lacks (empty: it is one)."""
    missing = [m for m in ("name", "estimate", "estimate_batch") if not hasattr(obj, m)]
    missing += [m for m in ("estimate", "estimate_batch") if hasattr(obj, m) and not callable(getattr(obj, m))]
    if hasattr(obj, "name") and not isinstance(getattr(obj, "name"), str):
        missing.append("name (a str)")
    return missing


def load_class_path(path: str, **options: Any) -> PoseEstimator:
    """Import ``path`` and build it with ``options``; a named InvalidEstimator for each way this can fail."""
    factory = import_object(path)
    if not callable(factory):
        raise InvalidEstimator(f"estimator {path!r}: {type(factory).__name__} object is not a class.")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise InvalidEstimator(f"estimator {path!r}: options {sorted(options)} do not fit its constructor "
                               f"{inspect.signature(factory)} ({exc}).") from exc
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    estimator = factory(**options)
    missing = missing_members(estimator)
    if missing or not isinstance(estimator, PoseEstimator):
        raise InvalidEstimator(f"estimator {path!r}: built a {type(estimator).__name__}, which is not a "
                               f"PoseEstimator (missing: {', '.join(missing) or '?'}). Fix: subclass "
                               "pgpis.pose.PoseEstimator, set `name` and implement `estimate(image) -> PoseEstimate`.")
    return estimator
