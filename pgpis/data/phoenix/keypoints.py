"""Phoenix14T whole-body keypoint files: a restricted unpickler, the known containers, and ``.npz``.

The HRNet COCO-WholeBody keypoints distributed with MSKA / TwoStream-SLR are
pickles (sometimes gzip-compressed) holding, per video, ``[T, 133, 3]``
``(x, y, score)`` in pixels of the 210x260 (w x h) frame. Two containers are known:

* ``{"test/<video>": {"keypoints": ndarray}}`` (names carry the split), and
* dicts (or a list of dicts with a ``"name"``) holding a ``"keypoint"`` torch tensor.

A pickle can run arbitrary code while it loads, so pgpis **never** calls
``pickle.load`` on them. :class:`RestrictedUnpickler` admits only the globals
needed to rebuild numpy arrays and torch tensors (torch storages go through
``torch.load(weights_only=True)``, itself restricted); anything else — e.g. a
``__reduce__`` that calls ``os.system`` — is refused with
:class:`UnsafePickleError`. ``pgpis data convert-keypoints`` converts the
pickles once to ``.npz`` (``{"<split>/<video>": float32 [T, 133, 3]}``), which
loads with ``allow_pickle=False`` and is what pgpis prefers when both exist.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from pgpis.atomic import atomic_write
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

NUM_POINTS = 133
FRAME_SIZE = (260, 210)  # (h, w): Phoenix frames are 210 wide x 260 high; keypoints are in their pixels
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pkl.gz", ".pickle.gz", ".gz", ".train", ".dev", ".test")

CONVERT_FIX = ("do not load this file; get the keypoints as a pickle of plain numpy arrays / torch tensors, "
               "or as .npz ({'<split>/<video>': float32 [T, 133, 3]}, see `pgpis data convert-keypoints`)")


class UnsafePickleError(DataFormatError):
    """The pickle asks for something other than array/tensor reconstruction; it was not executed."""


def _load_storage(data: bytes) -> Any:
    """``torch.storage._load_from_bytes`` replacement: the nested torch payload is read weights-only."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _torch_global(name: str) -> Callable[..., Any]:
    import torch  # noqa: F401  (imported lazily: numpy-only pickles need no torch)
    import torch._tensor
    import torch._utils

    return {
        "_rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "_rebuild_tensor": torch._utils._rebuild_tensor,
        "_rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
        "Tensor": torch.Tensor,
    }[name]


# (module, name) -> resolver. Nothing here can run code beyond rebuilding an array or tensor.
def _allowed() -> dict[tuple[str, str], Callable[[], Any]]:
    import codecs
    import collections

    allowed: dict[tuple[str, str], Callable[[], Any]] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x spellings
        allowed[(mod, "_reconstruct")] = lambda: _np_attr("_reconstruct")
        allowed[(mod, "scalar")] = lambda: _np_attr("scalar")
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = lambda: _np_numeric_attr("_frombuffer")
    allowed[("numpy", "ndarray")] = lambda: np.ndarray
    allowed[("numpy", "dtype")] = lambda: np.dtype
    allowed[("_codecs", "encode")] = lambda: codecs.encode
    allowed[("collections", "OrderedDict")] = lambda: collections.OrderedDict
    allowed[("torch._utils", "_rebuild_tensor_v2")] = lambda: _torch_global("_rebuild_tensor_v2")
    allowed[("torch._utils", "_rebuild_tensor")] = lambda: _torch_global("_rebuild_tensor")
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = lambda: _torch_global("_rebuild_from_type_v2")
    allowed[("torch", "Tensor")] = lambda: _torch_global("Tensor")
    allowed[("torch.storage", "_load_from_bytes")] = lambda: _load_storage
    return allowed


def _np_attr(name: str) -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


def _np_numeric_attr(name: str) -> Any:
    try:
        from numpy._core import numeric
    except ImportError:  # numpy < 2
        from numpy.core import numeric  # type: ignore[no-redef]
    return getattr(numeric, name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy-array / torch-tensor reconstruction globals."""

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        resolver = self._allowed.get((module, name))
        if resolver is None:
            raise UnsafePickleError(Problem(
                self.source, f"the pickle asks for '{module}.{name}', which is not an array/tensor type; refused "
                             "without running it (a pickle can execute code when loaded)", CONVERT_FIX))
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(Problem(self.source, "the pickle uses persistent ids (a torch.save archive?), "
                                                      "which this loader does not follow", CONVERT_FIX))


def restricted_load(path: str | os.PathLike) -> Any:
    """Load a (possibly gzip-compressed) pickle with :class:`RestrictedUnpickler`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(Problem(str(path), f"cannot read keypoint file ({e})", "check the path")) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataFormatError(Problem(str(path), f"broken gzip data ({e})", "re-download the file")) from None
    try:
        return RestrictedUnpickler(io.BytesIO(raw), str(path)).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise DataFormatError(Problem(str(path), f"not a readable pickle ({type(e).__name__}: {e})",
                                      "re-download the file, or convert it to .npz")) from None


def _as_array(value: Any) -> np.ndarray | str | None:
    """The array behind a numpy array or torch tensor; a message when a tensor cannot become one; else None."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        try:
            return value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as e:  # bfloat16, sparse, quantised ... tensors
            return f"the keypoint tensor cannot be read as an array ({type(e).__name__}: {e})"
    return None


def _entry_array(value: Any) -> np.ndarray | str | None:
    arr = _as_array(value)
    if arr is None and isinstance(value, dict):
        for key in ("keypoints", "keypoint"):
            if key in value:
                arr = _as_array(value[key])
                break
    return arr


def check_keypoint_array(arr: np.ndarray, source: str, name: str) -> list[Problem]:
    """Problems of one video's ``[T, 133, 3]`` array: dtype, shape, finite values, detected points in the frame.

    Detected points (score >= :data:`~pgpis.pose.keypoints.CONFIDENT_SCORE`) must lie in the 210x260
    frame within :data:`~pgpis.pose.keypoints.KEYPOINT_TOLERANCE_PX` each side; low-score points may lie
    anywhere (HRNet still outputs a location for joints it cannot see) but must be finite.
    """
    fix_shape = "store COCO-WholeBody (x, y, score) per frame as a float array [T, 133, 3]"
    if arr.dtype.kind not in "iuf":
        return [Problem(source, f"keypoints have dtype {arr.dtype}, expected real numbers (float32)", fix_shape, item=name)]
    if arr.ndim != 3 or arr.shape[1:] != (NUM_POINTS, 3):
        return [Problem(source, f"keypoints have shape {list(arr.shape)}, expected [T, 133, 3]", fix_shape, item=name)]
    if arr.shape[0] == 0:
        return [Problem(source, "keypoints have no frames (shape [0, 133, 3])", fix_shape, item=name)]
    h, w = FRAME_SIZE
    return kpt.validate_keypoints(
        arr[..., :2], FRAME_SIZE, file=source, item=name, spec=kpt.COCO_WHOLEBODY_133, scores=arr[..., 2],
        missing=None, frame_label=f"{w}x{h} (w x h) Phoenix frame",
        fix=f"re-extract this video's keypoints in pixels of the {w}x{h} frames (no detection = all zeros); "
            "if they come from another resolution, rescale them")


def extract_keypoints(obj: Any, source: str) -> dict[str, np.ndarray]:
    """``{video name: float32 [T, 133, 3]}`` from any known container, every entry checked; all problems raised together."""
    items: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)) and all(isinstance(v, dict) and "name" in v for v in obj):
        items = [(str(v["name"]), v) for v in obj]
    else:
        raise DataFormatError(Problem(source, f"unknown keypoint container ({type(obj).__name__})",
                                      "expected {name: {'keypoints': array}} or dicts with 'name' and a 'keypoint' tensor"))
    if not items:
        raise DataFormatError(Problem(source, "the keypoint file holds no videos",
                                      "use the keypoint file that belongs to this dataset (one [T, 133, 3] array per video)"))
    out: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for name, value in items:
        arr = _entry_array(value)
        if arr is None or isinstance(arr, str):
            held = next((f"'{k}' holds a {type(value[k]).__name__}, not an array or tensor" for k in ("keypoints", "keypoint")
                         if isinstance(value, dict) and k in value), "entry has no 'keypoints' array or 'keypoint' tensor")
            problems.append(Problem(source, arr or held,
                                    "store [T, 133, 3] (x, y, score) per video", item=name))
            continue
        found = check_keypoint_array(arr, source, name)
        if found:
            problems.extend(found)
            continue
        key = normalise_name(name)
        if key in out:
            problems.append(Problem(source, f"two entries are both named '{key}' (after removing './' and slashes)",
                                    "keep one entry per video", item=name))
            continue
        out[key] = arr.astype(np.float32)
    if problems:
        raise DataFormatError(problems)
    return out


def normalise_name(name: str) -> str:
    """``./test/x/`` -> ``test/x``: the key form used in ``.npz`` files and look-ups."""
    name = name.strip().strip("/")
    return name[2:] if name.startswith("./") else name


def read_keypoint_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one keypoint file (``.npz`` or a pickle container) into ``{name: float32 [T, 133, 3]}``."""
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # a damaged archive raises BadZipFile, zlib.error, EOFError, ValueError, OSError...
            raise DataFormatError(Problem(str(path), f"not a readable .npz ({type(e).__name__}: {e})",
                                          "rewrite it with `pgpis data convert-keypoints`")) from None
        return extract_keypoints(arrays, str(path))
    return extract_keypoints(restricted_load(path), str(path))


def read_keypoint_files(paths: Iterable[str | os.PathLike]) -> dict[str, np.ndarray]:
    """Merge several files (e.g. one pickle per split); a video found twice with different values is a problem."""
    merged: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    unsafe = False
    for path in paths:
        try:
            found = read_keypoint_file(path)
        except DataFormatError as e:
            problems.extend(e.problems)
            unsafe |= isinstance(e, UnsafePickleError)
            continue
        for name, arr in found.items():
            if name in merged and not np.array_equal(merged[name], arr):
                problems.append(Problem(str(path), "video also appears in another keypoint file with different values",
                                        "keep one keypoint file per video", item=name))
            merged.setdefault(name, arr)
    if problems:
        raise (UnsafePickleError if unsafe else DataFormatError)(problems)
    return merged


def write_keypoints_npz(path: str | os.PathLike, keypoints: dict[str, np.ndarray]) -> Path:
    """Write ``{name: [T, 133, 3]}`` as a compressed ``.npz`` (no pickle inside)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{normalise_name(k): np.asarray(v, np.float32) for k, v in keypoints.items()})
    return path


def write_video_npz(path: str | os.PathLike, name: str, frames: np.ndarray) -> Path:
    """Write one video's ``[T, 133, 3]`` (Phoenix frame) as ``{name: array}`` .npz, atomically (`pgpis pose
    extract --format npz`: a kill leaves the old file or the whole new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {normalise_name(name): np.asarray(frames, np.float32)}
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def video_in_npz(path: Path, name: str) -> bool:
    """Whether `path` holds video `name` as :func:`read_keypoint_file` reads it (a file a kill cut short does not)."""
    try:
        return name in read_keypoint_file(path)
    except DataFormatError:
        return False


def convert_keypoints(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> tuple[Path, int]:
    """Pickles (read with the restricted unpickler) -> one ``.npz``; returns (path, number of videos)."""
    merged = read_keypoint_files(sources)
    return write_keypoints_npz(out, merged), len(merged)
