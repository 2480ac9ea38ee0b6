"""rtmlib backend: DWPose / RTMW whole-body or RTMPose body through onnxruntime (the field's usual front end).

Built from rtmlib's parts, a YOLOX person detector and an RTMPose/RTMW top-down pose model (the same pair
``rtmlib.Body`` / ``rtmlib.Wholebody`` wire together), so that an image where the detector finds nobody is
``found=False`` (the solution classes would then run the pose model on the whole frame and report a
made-up person) and so that a local model path is used as given (``rtmlib.Body`` replaces any pose path
containing "rtmo" by its own RTMO URL). rtmlib is called with ``to_openpose=False``: the COCO-17 /
COCO-WholeBody-133 output goes through :mod:`pgpis.pose.mappings`, which the tests check.

Models are rtmlib's URLs per ``mode`` (downloaded once into rtmlib's cache, ``$TORCH_HOME/hub/checkpoints``
or ``~/.cache/rtmlib/hub/checkpoints``) or local ``.onnx`` paths (``det=``, ``pose=``). Before anything
downloads, a missing file is looked up in that cache; offline (``offline=True``, ``PGPIS_OFFLINE=1``,
``HF_HUB_OFFLINE=1``, or the host unreachable) a missing file is an EstimatorUnavailable naming the URL,
the cache folder and how to provide the file.
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from pgpis.pose.errors import EstimatorUnavailable, InvalidEstimator
from pgpis.pose.estimate import BaseEstimator, ImageLike, PoseEstimate, to_rgb_array
from pgpis.pose.mappings import (clean_points, coco17_to_openpose18, wholebody133_hands,
                                 wholebody133_to_openpose18)
from pgpis.pose.selection import PersonRule, check_rule, select_person

INSTALL_HINT = 'pip install "pgpis[pose]"  (or: pip install rtmlib onnxruntime)'
KINDS = ("wholebody", "body")
_TRUE = ("1", "true", "yes", "on")


def import_rtmlib() -> Any:
    """``rtmlib`` (and onnxruntime), or EstimatorUnavailable saying how to install them."""
    try:
        import onnxruntime  # noqa: F401
        import rtmlib
    except Exception as exc:
        raise EstimatorUnavailable(f"estimator 'rtmlib': cannot import rtmlib/onnxruntime ({type(exc).__name__}: "
                                   f"{exc}). Fix: {INSTALL_HINT}.") from exc
    return rtmlib


def rtmlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtmlib")
    except PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path:
    """The folder rtmlib's ``download_checkpoint`` stores models in (its own rule: ``$TORCH_HOME/hub`` or
    ``$XDG_CACHE_HOME/rtmlib/hub``, default ``~/.cache/rtmlib/hub``, then ``checkpoints``)."""
    try:
        from rtmlib.tools.file import _get_rtmhub_dir

        hub = _get_rtmhub_dir()
    except Exception:  # a future rtmlib moved it: the same rule, spelled out
        hub = os.path.join(os.path.expanduser(os.getenv(
            "TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "rtmlib"))), "hub")
    return Path(hub) / "checkpoints"


def cached_model(url: str, folder: Path | None = None) -> Path | None:
    """The cached file for ``url`` (the extracted ``.onnx`` rtmlib leaves, or the downloaded file), or None."""
    folder = cache_dir() if folder is None else folder
    name = os.path.basename(urlparse(url).path)
    for candidate in (folder / (name.split(".")[0] + ".onnx"), folder / name):
        if candidate.is_file():
            return candidate
    return None


def is_offline(url: str, offline: bool | None, timeout: float = 2.0) -> str | None:
    """Why ``url`` cannot be downloaded now (None: it may be). ``offline`` True/False overrides the checks."""
    if offline is True:
        return "offline=True was given"
    if offline is False:
        return None
    for var in ("PGPIS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"{parts.hostname} is unreachable ({exc})"


def resolve_model(what: str, spec: str, offline: bool | None) -> str:
    """A model argument (local path or URL) -> what rtmlib should load, failing early with the fix."""
    if not spec.startswith(("http://", "https://")):
        path = Path(spec).expanduser()
        if path.is_file():
            return str(path)
        raise EstimatorUnavailable(f"estimator 'rtmlib': {what} model file {spec} does not exist. Fix: pass "
                                   f"the path of an existing .onnx file ({what}=...), or a model URL.")
    cached = cached_model(spec)
    if cached is not None and cached.suffix == ".onnx":
        return str(cached)
    if cached is not None:
        return spec  # the zip is there; rtmlib extracts it without a download
    reason = is_offline(spec, offline)
    if reason is not None:
        folder = cache_dir()
        raise EstimatorUnavailable(
            f"estimator 'rtmlib': the {what} model is not available offline ({reason}).\n"
            f"  URL: {spec}\n  looked in: {folder}\n"
            f"  Fix: on a machine with internet, download the URL into that folder (rtmlib extracts the zip "
            f"itself; or put its end2end.onnx there as {os.path.basename(urlparse(spec).path).split('.')[0]}.onnx), "
            f"or pass a local .onnx path: load_estimator('rtmlib', {what}='path/to/model.onnx') "
            f"(command line: --estimator-option {what}=PATH).")
    return spec


def check_device(backend: str, device: str) -> None:
    """Refuse ``device="cuda"`` when onnxruntime has no CUDA provider (it would quietly run on the CPU)."""
    if backend != "onnxruntime" or not device.startswith("cuda"):
        return
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        raise EstimatorUnavailable(f"estimator 'rtmlib': device={device!r}, but this onnxruntime has no CUDA "
                                   f"provider (available: {', '.join(providers)}). Fix: pip install onnxruntime-gpu "
                                   "in place of onnxruntime, or use device='cpu'.")


def unavailable_reason(mode: str = "balanced", kind: str = "wholebody") -> str | None:
    """None when the rtmlib backend with its default models can be built here, else why not."""
    try:
        import_rtmlib()
        table = _mode_table(kind, mode)
        for what in ("det", "pose"):
            resolve_model(what, table[what], None)
    except (EstimatorUnavailable, InvalidEstimator) as exc:
        return str(exc)
    return None


def _mode_table(kind: str, mode: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise InvalidEstimator(f"estimator 'rtmlib': kind={kind!r} is not one of {list(KINDS)}.")
    rtmlib = import_rtmlib()
    table = (rtmlib.Wholebody if kind == "wholebody" else rtmlib.Body).MODE
    if mode not in table:
        raise InvalidEstimator(f"estimator 'rtmlib': mode={mode!r} is not one of {sorted(table)} for kind={kind!r}.")
    return table[mode]


class RtmlibEstimator(BaseEstimator):
    """rtmlib YOLOX + RTMW (``kind="wholebody"``: body, hands, feet, face) or RTMPose (``kind="body"``).

    ``mode``: rtmlib's 'lightweight' | 'balanced' | 'performance' model pair. ``det`` / ``pose``: a local
    ``.onnx`` path or URL replacing that mode's model (input sizes default to the mode's; pass
    ``det_input_size=(h, w)`` / ``pose_input_size=(w, h)`` as rtmlib spells them for other models).
    ``det_score``: the detector's box threshold (rtmlib's 0.7; an ONNX model with NMS built in, as the
    OpenMMLab ones are, uses rtmlib's fixed 0.3 instead). ``min_score``: keypoints scoring below it are
    missing (rtmlib's own drawing uses 0.3; RTMPose scores are SimCC peak values, not probabilities). ``person``: which detected person to keep
    (:mod:`pgpis.pose.selection`). ``offline``: True never downloads, None decides from the environment.
    """

    def __init__(self, kind: str = "wholebody", mode: str = "balanced", det: str | None = None,
                 pose: str | None = None, det_input_size: tuple[int, int] | None = None,
                 pose_input_size: tuple[int, int] | None = None, device: str = "cpu",
                 backend: str = "onnxruntime", min_score: float = 0.3, person: PersonRule = "largest-central",
                 det_score: float = 0.7, offline: bool | None = None):
        rtmlib = import_rtmlib()
        table = _mode_table(kind, mode)
        check_device(backend, device)
        self.kind, self.min_score, self.person = kind, float(min_score), check_rule(person)
        det_path = resolve_model("det", det or table["det"], offline)
        pose_path = resolve_model("pose", pose or table["pose"], offline)
        det_size = tuple(det_input_size or table["det_input_size"])
        pose_size = tuple(pose_input_size or table["pose_input_size"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rtmlib prints "load <path> with <backend> backend"
                self._det = rtmlib.YOLOX(det_path, model_input_size=det_size, score_thr=det_score,
                                         backend=backend, device=device)
                self._pose = rtmlib.RTMPose(pose_path, model_input_size=pose_size, to_openpose=False,
                                            backend=backend, device=device)
        except Exception as exc:
            raise EstimatorUnavailable(f"estimator 'rtmlib': could not load det={det_path} / pose={pose_path} "
                                       f"({type(exc).__name__}: {exc}). Fix: check the files are the ONNX "
                                       "models rtmlib expects, or delete a broken download from "
                                       f"{cache_dir()} and retry online.") from exc
        stem = Path(urlparse(pose_path).path).stem
        self.name = f"rtmlib-{rtmlib_version()}:{kind}:{stem}"

    def close(self) -> None:
        self._det = self._pose = None

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """Person boxes ``[N, 4]`` xyxy in pixels (rtmlib YOLOX, most confident first)."""
        boxes = np.asarray(self._det(bgr), dtype=np.float32)
        return boxes.reshape(-1, 4)

    def people(self, bgr: np.ndarray, boxes: np.ndarray
               ) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray, np.ndarray]:
        """OpenPose-18 bodies and ``[2, 21, 3]`` hands (None for kind="body") of each box, cleaned; and
        rtmlib's raw ``(N, K, 2)`` keypoints and ``(N, K)`` scores."""
        h, w = bgr.shape[:2]
        keypoints, scores = self._pose(bgr, bboxes=[list(map(float, b)) for b in boxes])
        bodies, hands = [], []
        for kp, sc in zip(np.asarray(keypoints), np.asarray(scores)):
            pts = clean_points(np.concatenate([kp, sc[:, None]], axis=1), (h, w), self.min_score)
            if self.kind == "wholebody":
                bodies.append(wholebody133_to_openpose18(pts))
                hands.append(wholebody133_hands(pts))
            else:
                bodies.append(coco17_to_openpose18(pts))
                hands.append(None)
        return bodies, hands, keypoints, scores

    def estimate(self, image: ImageLike) -> PoseEstimate:
        if self._det is None:
            raise EstimatorUnavailable("estimator 'rtmlib' was closed. Fix: load_estimator('rtmlib') again.")
        rgb = to_rgb_array(image)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # rtmlib (OpenCV) takes BGR
        size = rgb.shape[:2]
        with_hands = self.kind == "wholebody"
        boxes = self.detect(bgr)
        if len(boxes) == 0:
            return PoseEstimate.nobody(size, hands=with_hands)
        bodies, hands, keypoints, scores = self.people(bgr, boxes)
        index = select_person(bodies, size, self.person)
        body = bodies[index]
        if not (body[:, 2] > 0).any():
            return PoseEstimate.nobody(size, hands=with_hands)
        extra = None
        if with_hands:
            extra = clean_points(np.concatenate([keypoints[index], scores[index][:, None]], axis=1), size,
                                 self.min_score)
        return PoseEstimate(body, hands[index], True, size, extra)


__all__ = ["RtmlibEstimator", "cache_dir", "cached_model", "resolve_model", "unavailable_reason"]
