"""The default backend: MediaPipe 0.10.21's bundled BlazePose-full and hand landmarker, offline on the CPU.

BlazePose (``mp.solutions.pose``, ``model_complexity=1``: the bundled full model; 0 and 2 would download)
finds ONE person per image in static mode (the most prominent), so no person selection happens here.
Its ``left_*`` points are the person's left, except on back views where it often swaps them (passed
through as reported; see docs/pose-estimators.md). Points with ``visibility`` below ``min_visibility`` or
outside the image are missing ``(-1, -1, 0)``.

Hands (``mp.solutions.hands``, up to 2): MediaPipe's handedness label assumes a mirrored (selfie) image
(its own docstring says so), so on an ordinary photo its "Left" is the person's right. Each detected hand
is therefore assigned to the BlazePose wrist (15 left, 16 right) nearest its own wrist point (the two
hands jointly, by the smaller total distance); only when no body is found does the flipped label decide.
Hands give no per-point score: every point of a hand scores that hand's detection (handedness) score.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from pgpis.pose.backends._quiet import filtered_native_stderr
from pgpis.pose.errors import EstimatorUnavailable
from pgpis.pose.estimate import LEFT, NUM_HAND, RIGHT, BaseEstimator, ImageLike, PoseEstimate, missing_points, \
    to_rgb_array
from pgpis.pose.mappings import BLAZEPOSE_WRISTS, blazepose33_to_openpose18, clean_points

INSTALL_HINT = 'pip install "pgpis[pose]"  (MediaPipe 0.10.21, the last release bundling its models; pins numpy<2)'


def import_mediapipe() -> Any:
    """``mediapipe`` with its legacy ``solutions``, or EstimatorUnavailable saying how to install it."""
    try:
        import mediapipe as mp
        from mediapipe.python import solutions  # noqa: F401  (gone from 0.10.30 on)
    except Exception as exc:  # ImportError, or numpy-2 ABI errors raised as other types
        raise EstimatorUnavailable(
            f"estimator 'mediapipe': cannot import mediapipe with its legacy solutions ({type(exc).__name__}: "
            f"{exc}). Fix: {INSTALL_HINT}; or choose another estimator (--estimator rtmlib).") from exc
    return mp


def unavailable_reason() -> str | None:
    """None when the mediapipe backend can be built here, else why not."""
    try:
        import_mediapipe()
    except EstimatorUnavailable as exc:
        return str(exc)
    return None


class MediaPipeEstimator(BaseEstimator):
    """BlazePose-full body (+ hands) -> OpenPose-18 and 2 x 21 hand points; see the module docstring.

    ``hands``: run the hand landmarker too (False: ``PoseEstimate.hands`` is None). ``min_visibility``:
    BlazePose points below it are missing. ``min_detection_confidence`` / ``hand_min_confidence``: the
    person / hand detectors' thresholds. ``quiet``: filter MediaPipe's native start-up log lines.
    The solution objects are built once and reused; ``close()`` (or ``with``) releases them.
    """

    def __init__(self, hands: bool = True, min_visibility: float = 0.5, min_detection_confidence: float = 0.5,
                 hand_min_confidence: float = 0.5, quiet: bool = True):
        mp = import_mediapipe()
        self.min_visibility = float(min_visibility)
        self.quiet = quiet
        self._lock = threading.Lock()  # a MediaPipe graph serves one call at a time
        with filtered_native_stderr(quiet):
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                enable_segmentation=False,
                                                min_detection_confidence=min_detection_confidence)
            self._hands = (mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=1,
                                                    min_detection_confidence=hand_min_confidence)
                           if hands else None)
            # The graphs open their models on worker threads after construction (that is when MediaPipe logs);
            # one blank frame through each waits for that inside the filtered window and warms them up.
            blank = np.zeros((64, 64, 3), np.uint8)
            for sol in (self._pose, self._hands):
                if sol is not None:
                    sol.process(blank)
        self.name = f"mediapipe-{mp.__version__}:blazepose-full" + ("+hand-landmark-full" if hands else "")

    def close(self) -> None:
        for sol in (self._pose, self._hands):
            if sol is not None:
                sol.close()
        self._pose = self._hands = None

    def estimate(self, image: ImageLike) -> PoseEstimate:
        rgb = to_rgb_array(image)
        if self._pose is None:
            raise EstimatorUnavailable("estimator 'mediapipe' was closed. Fix: load_estimator('mediapipe') again.")
        h, w = rgb.shape[:2]
        with self._lock, filtered_native_stderr(self.quiet):
            pose_result = self._pose.process(rgb)
            hand_result = self._hands.process(rgb) if self._hands is not None else None
        raw = None
        body = missing_points(18)
        if pose_result.pose_landmarks is not None:
            raw = np.array([(lm.x * w, lm.y * h, lm.visibility) for lm in pose_result.pose_landmarks.landmark],
                           np.float32)
            body = blazepose33_to_openpose18(clean_points(raw, (h, w), self.min_visibility))
        found = bool((body[:, 2] > 0).any())
        hands = None
        if hand_result is not None:
            wrists = raw[list(BLAZEPOSE_WRISTS), :2] if raw is not None else None
            hands = self._hands_array(hand_result, (h, w), wrists)
        return PoseEstimate(body, hands, found, (h, w))

    @staticmethod
    def _hands_array(result: Any, size: tuple[int, int], body_wrists: np.ndarray | None) -> np.ndarray:
        h, w = size
        found: list[tuple[np.ndarray, str, float]] = []
        for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
            label = handedness.classification[0]
            pts = np.array([(lm.x * w, lm.y * h, label.score) for lm in landmarks.landmark], np.float32)
            found.append((clean_points(pts, size), label.label, float(label.score)))
        out = np.stack([missing_points(NUM_HAND)] * 2)
        for (pts, _, _), slot in zip(found, assign_hands(found, body_wrists, size)):
            if slot is not None:
                out[slot] = pts
        return out


def _hand_wrist(pts: np.ndarray) -> np.ndarray | None:
    present = pts[pts[:, 2] > 0]
    if len(present) == 0:
        return None
    return pts[0, :2] if pts[0, 2] > 0 else present[:, :2].mean(axis=0)  # wrist, or the hand's centre if cut off


def assign_hands(hands: list[tuple[np.ndarray, str, float]], body_wrists: np.ndarray | None,
                 size: tuple[int, int]) -> list[int | None]:
    """Slot (LEFT / RIGHT, the person's) of each detected hand ``(points [21, 3], mediapipe label, score)``.

    With body wrists ``[2, 2]`` (person's left, right; BlazePose predicts them even when hidden): nearest
    wrist, the hands jointly by the smaller total distance. Without: MediaPipe's label flipped (it assumes a
    mirrored image), the more confident hand first, a clash going to the free slot. Extra hands: None.
    """
    slots: list[int | None] = [None] * len(hands)
    wrists = [_hand_wrist(p) for p, _, _ in hands]
    usable = [i for i, wr in enumerate(wrists) if wr is not None]
    if body_wrists is not None and usable:
        def dist(i: int, slot: int) -> float:
            return float(np.hypot(*(wrists[i] - body_wrists[slot])))
        if len(usable) == 1:
            i = usable[0]
            slots[i] = LEFT if dist(i, LEFT) <= dist(i, RIGHT) else RIGHT
        else:
            best = None
            for a in usable:
                for b in usable:
                    if a != b:
                        cost = dist(a, LEFT) + dist(b, RIGHT)
                        if best is None or cost < best[0]:
                            best = (cost, a, b)
            assert best is not None
            slots[best[1]], slots[best[2]] = LEFT, RIGHT
        return slots
    taken: set[int] = set()
    for i in sorted(usable, key=lambda i: -hands[i][2]):
        slot = RIGHT if hands[i][1] == "Left" else LEFT  # mirrored-image label -> the person's side
        if slot in taken:
            slot = 1 - slot
        if slot not in taken:
            slots[i] = slot
            taken.add(slot)
    return slots
