"""SCHP (Self-Correction Human Parsing) through onnxruntime: the parser TruePose's maps came from.

Preprocessing and postprocessing follow SCHP's own ``simple_extractor.py`` (checked against its code; see
docs/parsing.md): the whole image is the person box, widened or heightened to the model input's aspect ratio
around its centre and warped (OpenCV affine, bilinear, black border) to the input size, 473x473 for LIP and
512x512 for ATR; the pixels go in as **BGR** in [0, 1] normalised with mean (0.406, 0.456, 0.485) and std
(0.225, 0.224, 0.229) (ImageNet's, in BGR order). Of the exported model's outputs ``[parsing, fusion, edge]`` the
fusion logits (output 1) are used, as OOTDiffusion runs these exports: upsampled bilinearly (align_corners) to the
input size, warped back onto the image with the inverse affine, and arg-maxed per pixel.

Weights: the ONNX exports in the hub repo ``levihsu/OOTDiffusion`` (``checkpoints/humanparsing/parsing_lip.onnx``,
``parsing_atr.onnx``), or any local ``.onnx`` / URL with the same input and outputs (``model=``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgpis.parsing.errors import InvalidParser, ParserUnavailable
from pgpis.parsing.parser import BaseParser
from pgpis.parsing.weights import resolve_weights
from pgpis.pose.estimate import ImageLike, to_rgb_array

INSTALL_HINT = 'pip install "pgpis[pose]"  (or: pip install onnxruntime opencv-python)'
#: SCHP's normalisation, in the BGR channel order its networks read
MEAN_BGR = np.array([0.406, 0.456, 0.485], np.float32)
STD_BGR = np.array([0.225, 0.224, 0.229], np.float32)
HUB_REPO = "levihsu/OOTDiffusion"


@dataclass(frozen=True)
class SchpSettings:
    """One SCHP release: its label set, input size (h, w) and default weights."""

    label_set: str
    input_size: tuple[int, int]
    model: str


SETTINGS = {
    "lip": SchpSettings("lip", (473, 473), f"hf://{HUB_REPO}/checkpoints/humanparsing/parsing_lip.onnx"),
    "atr": SchpSettings("atr", (512, 512), f"hf://{HUB_REPO}/checkpoints/humanparsing/parsing_atr.onnx"),
}


def import_runtime() -> tuple[Any, Any]:
    """(onnxruntime, cv2), or ParserUnavailable saying how to install them."""
    try:
        import cv2
        import onnxruntime
    except Exception as exc:
        raise ParserUnavailable(f"parser 'schp': cannot import onnxruntime/OpenCV ({type(exc).__name__}: {exc}). "
                                f"Fix: {INSTALL_HINT}.") from exc
    return onnxruntime, cv2


def input_affine(height: int, width: int, size: tuple[int, int]) -> np.ndarray:
    """``float64 [2, 3]``: image pixels -> model input pixels, SCHP's box-to-input warp without rotation.

    The box is the whole image, ``(w - 1) x (h - 1)`` around its centre, grown to the input's aspect ratio; it
    maps onto the input with one scale, its centre on the input's centre (pixel-centre convention ``(n - 1) / 2``).
    """
    out_h, out_w = size
    box_w, box_h = float(max(width - 1, 1)), float(max(height - 1, 1))
    aspect = out_w / out_h
    if box_w > aspect * box_h:
        box_h = box_w / aspect
    else:
        box_w = box_h * aspect
    scale = (out_w - 1) / box_w
    cx, cy = (width - 1) * 0.5, (height - 1) * 0.5
    return np.array([[scale, 0.0, (out_w - 1) * 0.5 - scale * cx],
                     [0.0, scale, (out_h - 1) * 0.5 - scale * cy]], np.float64)


class SchpOnnxParser(BaseParser):
    """SCHP through onnxruntime. ``dataset``: ``"lip"`` (20 classes, the default) or ``"atr"`` (18, mapped to LIP).

    ``model``: a local ``.onnx`` path, ``hf://org/repo/path`` or an ``https://`` URL (default: the dataset's export in
    ``levihsu/OOTDiffusion``). ``input_size``: ``(h, w)`` (default: the model's static input shape, else SCHP's size
    for the dataset). ``output``: index of the logits among the model's outputs (default 1, SCHP's fusion logits,
    when there are several). ``device``: ``"cpu"`` or ``"cuda"``. ``offline``: True never downloads.
    """

    def __init__(self, dataset: str = "lip", model: str | None = None, input_size: tuple[int, int] | None = None,
                 output: int | None = None, device: str = "cpu", offline: bool | None = None):
        if dataset not in SETTINGS:
            raise InvalidParser(f"parser 'schp': dataset={dataset!r} is not one of {sorted(SETTINGS)}.")
        ort, self._cv2 = import_runtime()
        settings = SETTINGS[dataset]
        self.label_set = settings.label_set
        self._num_classes = 20 if dataset == "lip" else 18
        name = f"schp-{dataset}"
        path = resolve_weights(model or settings.model, parser=name, offline=offline)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ParserUnavailable(f"parser {name!r}: device={device!r}, but this onnxruntime has no CUDA "
                                        "provider. Fix: pip install onnxruntime-gpu in place of onnxruntime, or "
                                        "use device='cpu'.")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:
            raise ParserUnavailable(f"parser {name!r}: could not load {path} ({type(exc).__name__}: {exc}). Fix: "
                                    "check it is an SCHP ONNX export, or delete a broken download and fetch it "
                                    "again.") from exc
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        static = [d for d in inp.shape[2:] if isinstance(d, int)]
        self.input_size = tuple(input_size) if input_size else (tuple(static) if len(static) == 2
                                                                 else settings.input_size)
        outputs = len(self._session.get_outputs())
        self._output = output if output is not None else (1 if outputs > 1 else 0)
        if not 0 <= self._output < outputs:
            raise InvalidParser(f"parser {name!r}: output={self._output}, but {path} has {outputs} output(s).")
        self.name = f"{name}:{Path(path).stem}"

    def close(self) -> None:
        self._session = None

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """``float32 [C, in_h, in_w]`` logits of the model input made from `rgb` (upsampled to the input size)."""
        import torch

        cv2 = self._cv2
        h, w = rgb.shape[:2]
        in_h, in_w = self.input_size
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        crop = cv2.warpAffine(bgr, input_affine(h, w, self.input_size), (in_w, in_h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = ((crop.astype(np.float32) / 255.0 - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)[None]
        out = self._session.run(None, {self._input_name: np.ascontiguousarray(x, np.float32)})[self._output]
        out = np.asarray(out, np.float32)
        if out.ndim != 4 or out.shape[1] != self._num_classes:
            raise InvalidParser(f"parser {self.name!r}: output {self._output} has shape {list(out.shape)}, expected "
                                f"[1, {self._num_classes}, h, w] logits of the {self.label_set.upper()} classes.")
        up = torch.nn.functional.interpolate(torch.from_numpy(out), size=(in_h, in_w), mode="bilinear",
                                             align_corners=True)
        return up[0].numpy()

    def parse(self, image: ImageLike) -> np.ndarray:
        if self._session is None:
            raise ParserUnavailable(f"parser {self.name!r} was closed. Fix: load_parser(...) again.")
        cv2 = self._cv2
        rgb = to_rgb_array(image)
        h, w = rgb.shape[:2]
        logits = np.ascontiguousarray(self.logits(rgb).transpose(1, 2, 0))
        back = cv2.invertAffineTransform(input_affine(h, w, self.input_size))
        warped = cv2.warpAffine(logits, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        if warped.ndim == 2:  # OpenCV drops a single channel's axis
            warped = warped[:, :, None]
        return np.argmax(warped, axis=2).astype(np.uint8)


def unavailable_reason(dataset: str = "lip") -> str | None:
    """None when the SCHP backend with its default weights can be built here, else why not (nothing downloads)."""
    try:
        import_runtime()
        resolve_weights(SETTINGS[dataset].model, parser=f"schp-{dataset}", offline=True)
    except (ParserUnavailable, InvalidParser) as exc:
        return str(exc)
    return None


__all__ = ["SchpOnnxParser", "SETTINGS", "input_affine", "unavailable_reason", "MEAN_BGR", "STD_BGR"]
