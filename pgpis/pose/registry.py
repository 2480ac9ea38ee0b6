"""``load_estimator(name, **options)`` and ``available_estimators()``: the one way pgpis gets an estimator.

Built-in names map to backend modules imported only on demand, so ``import pgpis.pose`` never imports
mediapipe or rtmlib; anything with a dot is a user's class path (:mod:`pgpis.pose.backends.classpath`).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from pgpis.pose.errors import EstimatorUnavailable
from pgpis.pose.estimate import PoseEstimator

DEFAULT = "mediapipe"
# name -> (module, class): the built-in backends
BUILTIN: dict[str, tuple[str, str]] = {
    "mediapipe": ("pgpis.pose.backends.mediapipe", "MediaPipeEstimator"),
    "rtmlib": ("pgpis.pose.backends.rtmlib", "RtmlibEstimator"),
}


def _builtin(name: str) -> tuple[Any, Callable[..., PoseEstimator]]:
    module_name, cls = BUILTIN[name]
    module = importlib.import_module(module_name)
    return module, getattr(module, cls)


def load_estimator(name: str = DEFAULT, **options: Any) -> PoseEstimator:
    """Build an estimator: ``"mediapipe"`` (default, offline, bundled models), ``"rtmlib"`` or a class path.

    ``options`` go to the backend's constructor (see docs/pose-estimators.md). Raises
    :class:`EstimatorUnavailable` (unknown name, optional dependency or model file missing) or
    :class:`InvalidEstimator` (bad option, class path that is no PoseEstimator), each naming the fix.
    """
    name = (name or DEFAULT).strip()
    if name in BUILTIN:
        from pgpis.pose.backends.classpath import check_options

        _, cls = _builtin(name)
        check_options(name, cls, options)
        return cls(**options)
    if "." in name or ":" in name:
        from pgpis.pose.backends.classpath import load_class_path

        return load_class_path(name, **options)
    raise EstimatorUnavailable(f"unknown estimator {name!r}. Fix: use one of {sorted(BUILTIN)} or a class path "
                               "'package.module.ClassName' of your own PoseEstimator (docs/pose-estimators.md).")


def available_estimators() -> dict[str, str | None]:
    """Built-in name -> None if it can be loaded here with its defaults, else the reason (no model is built;
    rtmlib's check may try a 2 s connection to its model host when its files are not cached)."""
    out: dict[str, str | None] = {}
    for name in BUILTIN:
        try:
            module, _ = _builtin(name)
            out[name] = module.unavailable_reason()
        except Exception as exc:  # the backend module itself failed to import
            out[name] = f"{type(exc).__name__}: {exc}"
    return out
