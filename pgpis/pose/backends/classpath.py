"""A user's own estimator by class path: ``"package.module.ClassName"`` (or ``"package.module:ClassName"``).

The class (or any callable returning an estimator) is imported and called with the options as keyword
arguments; what it returns must satisfy :class:`~pgpis.pose.estimate.PoseEstimator` (a ``name`` and
``estimate`` / ``estimate_batch``; subclassing PoseEstimator gives the default ``estimate_batch``).
The import and the option check are shared with human parsers (:mod:`pgpis.parsing.registry`): ``kind`` names
the thing in messages, ``error`` is the exception type raised.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from pgpis.pose.errors import InvalidEstimator
from pgpis.pose.estimate import PoseEstimator


def split_class_path(path: str, *, kind: str = "estimator", error: type[Exception] = InvalidEstimator
                     ) -> tuple[str, str]:
    """``"a.b.C"`` / ``"a.b:C"`` -> ``("a.b", "C")``."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise error(f"{kind} {path!r}: not a class path. Fix: give 'package.module.ClassName' "
                    "(importable on PYTHONPATH) or a built-in name.")
    return module, attr


def import_object(path: str, *, kind: str = "estimator", error: type[Exception] = InvalidEstimator) -> Any:
    module_name, attr = split_class_path(path, kind=kind, error=error)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{kind} {path!r}: cannot import module {module_name!r} ({exc}). Fix: install "
                    "the package or add its folder to PYTHONPATH.") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"{kind} {path!r}: module {module_name!r} has no attribute {attr!r}. "
                        "Fix: check the class name's spelling.")
        obj = getattr(obj, part)
    return obj


def build_class_path(path: str, options: dict[str, Any], *, kind: str = "estimator",
                     error: type[Exception] = InvalidEstimator) -> Any:
    """Import ``path`` and call it with ``options`` (checked against its signature first); the built object."""
    factory = import_object(path, kind=kind, error=error)
    if not callable(factory):
        raise error(f"{kind} {path!r}: {type(factory).__name__} object is not a class.")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise error(f"{kind} {path!r}: options {sorted(options)} do not fit its constructor "
                    f"{inspect.signature(factory)} ({exc}).") from exc
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    return factory(**options)


def check_options(name: str, cls: Any, options: dict[str, Any], *, kind: str = "estimator",
                  error: type[Exception] = InvalidEstimator) -> None:
    """Refuse keyword options a built-in backend's constructor does not take, listing those it does."""
    params = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise error(f"{kind} {name!r}: unknown option(s) {unknown}. Accepted: {', '.join(params)}.")


def missing_members(obj: Any) -> list[str]:
    """The PoseEstimator members ``obj`` lacks (empty: it is one)."""
    missing = [m for m in ("name", "estimate", "estimate_batch") if not hasattr(obj, m)]
    missing += [m for m in ("estimate", "estimate_batch") if hasattr(obj, m) and not callable(getattr(obj, m))]
    if hasattr(obj, "name") and not isinstance(getattr(obj, "name"), str):
        missing.append("name (a str)")
    return missing


def load_class_path(path: str, **options: Any) -> PoseEstimator:
    """Import ``path`` and build it with ``options``; a named InvalidEstimator for each way this can fail."""
    estimator = build_class_path(path, options)
    missing = missing_members(estimator)
    if missing or not isinstance(estimator, PoseEstimator):
        raise InvalidEstimator(f"estimator {path!r}: built a {type(estimator).__name__}, which is not a "
                               f"PoseEstimator (missing: {', '.join(missing) or '?'}). Fix: subclass "
                               "pgpis.pose.PoseEstimator, set `name` and implement `estimate(image) -> PoseEstimate`.")
    return estimator
