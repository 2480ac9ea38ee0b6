"""Which inputs a trained model needs at inference, found by asking its denoiser, and the error when one is missing.

A checkpoint's config decides what its denoiser reads from the batch: TruePose
always reads the source parsing map (HPFA's mask, CAA's regions) and the target
keypoints (the parsing selection), and with ``source_pose: true`` also the
rendered source pose. Rather than mirroring those rules here, the pipeline runs
the denoiser's own ``encode_conditions`` once on a probe batch that holds every
input inference can build, and records the keys it reads
(:func:`batch_keys_read`). A config change that makes the denoiser read a new key
is then picked up as is, or named in an error if inference cannot build it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch

from pgpis.diffusion.denoiser import STORED_PREFIX


@dataclass(frozen=True)
class InputSpec:
    """A per-sample input the caller supplies besides the source image and the target pose image."""

    name: str  # Pipeline.generate keyword (and Pipeline.needs entry)
    batch_keys: tuple[str, ...]  # batch keys made from it (as the DeepFashion DataModule names them)
    what: str
    api: str  # how to give it through Pipeline.generate
    cli: str  # how to give it through `pgpis generate`


#: every optional input inference can build, in the order errors and Pipeline.needs list them
INPUTS: dict[str, InputSpec] = {spec.name: spec for spec in (
    InputSpec("source_parsing", ("source_parsing",), "the source's human-parsing map (LIP class indices [H, W])",
              "Pipeline.generate(..., source_parsing=...) with an array, a parsing PNG such as "
              "<root>/parsing/<stem>.png, or a list of them",
              "`pgpis generate --parsing PARSING.png` (with --pairs: read from --root's parsing maps)"),
    InputSpec("source_pose", ("source_pose", "source_keypoints"),
              "the source person's pose (OpenPose-18 keypoints of the source image, rendered as in training)",
              "Pipeline.generate(..., source_pose=...) with keypoints [18, 2] in pose_frame, a keypoint file "
              "(.txt PCDMs, .csv CFLD annotation[#name], .json) or a rendered pose image, or a list of them",
              "`pgpis generate --source-pose KEYPOINTS` (with --pairs: read from --root's keypoint annotation)"),
    InputSpec("target_keypoints", ("target_keypoints",),
              "the target pose as OpenPose-18 keypoints: a rendered pose image is not enough",
              "give target_pose as keypoints [18, 2] or a keypoint file (.txt, .csv, .json), not a pose image",
              "`pgpis generate --pose KEYPOINTS` with a .txt/.csv/.json keypoint file"),
)}

#: batch key -> the input it is made from
KEY_TO_INPUT: dict[str, str] = {key: spec.name for spec in INPUTS.values() for key in spec.batch_keys}


@dataclass(frozen=True)
class RequiredInput:
    """An input a loaded model needs, with the reason taken from its denoiser and config (for errors and UIs)."""

    name: str
    batch_key: str
    what: str
    why: str
    api: str
    cli: str

    def describe(self) -> str:
        return f"{self.name}: {self.what}. Why: {self.why}. Give it: {self.api}; from the shell: {self.cli}"


class MissingInputError(ValueError):
    """The model needs inputs the call did not give; the message says which, why and how to give each."""

    def __init__(self, missing: Sequence[RequiredInput], model: str):
        self.missing = list(missing)
        lines = "\n".join(f"  - {m.describe()}" for m in self.missing)
        super().__init__(f"{model} needs {len(self.missing)} input(s) that were not given:\n{lines}")


class _ReadRecorder(dict):
    """A batch that notes every key read from it (``[]``, ``get``, ``in``).

    Feature-store keys (``stored/...``, :data:`pgpis.diffusion.denoiser.STORED_PREFIX`) are not noted: they
    replace frozen encoders in training only, and inference always encodes online.
    """

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.read: list[str] = []

    def _note(self, key) -> None:
        if not (isinstance(key, str) and key.startswith(STORED_PREFIX)):
            self.read.append(key)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key) -> bool:
        self._note(key)
        return super().__contains__(key)


@torch.no_grad()
def batch_keys_read(denoiser: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[str, ...]:
    """The batch keys `denoiser.encode_conditions` reads (in first-read order), from one call on `batch`.

    Raises ValueError naming the keys it read that `batch` does not hold (inputs inference cannot build).
    """
    recorder = _ReadRecorder(batch)
    try:
        denoiser.encode_conditions(recorder)
    except KeyError as err:
        absent = [k for k in dict.fromkeys(recorder.read) if k not in batch]
        if not absent:
            raise
        raise ValueError(f"{type(denoiser).__name__} reads batch key(s) {absent}, which the inference pipeline does "
                         f"not build (it builds {sorted(batch)}); set the denoiser's *_key options to those names, "
                         "or build the batch yourself and call the module's generate()") from err
    return tuple(dict.fromkeys(recorder.read))


def _why(denoiser: torch.nn.Module, config: Mapping[str, Any], key: str, name: str) -> str:
    """The reason a key is read, naming the config keys that ask for it where the checkpoint's config has them."""
    init = ((config.get("denoiser") or {}).get("init_args") or {}) if isinstance(config.get("denoiser"), dict) else {}
    prefix = "model.init_args.denoiser.init_args."
    flags = [f"{prefix}{k}: true" for k in dict.fromkeys((name, key)) if init.get(k) is True]
    named = [f"{prefix}{k}: {v}" for k, v in init.items() if k.endswith("_key") and v == key]
    reason = f"its denoiser ({type(denoiser).__name__}) reads batch['{key}']"
    return reason + (f" (the checkpoint's config: {', '.join(flags + named)})" if flags or named else "")


def required_inputs(denoiser: torch.nn.Module, config: Mapping[str, Any], keys_read: Sequence[str]
                    ) -> tuple[RequiredInput, ...]:
    """The optional inputs (:data:`INPUTS`) behind `keys_read`, in :data:`INPUTS` order, with their reasons."""
    first: dict[str, str] = {}
    for key in keys_read:
        if key in KEY_TO_INPUT:
            first.setdefault(KEY_TO_INPUT[key], key)
    out = []
    for name, spec in INPUTS.items():
        if name in first:
            key = first[name]
            out.append(RequiredInput(name, key, spec.what, _why(denoiser, config, key, name), spec.api, spec.cli))
    return tuple(out)


def model_name(label: str, config: Optional[Mapping[str, Any]] = None) -> str:
    """"This <label> model (<denoiser class>)" for error messages; `label` is the method's declared label."""
    den = (config or {}).get("denoiser")
    cls = den.get("class_path", "").rpartition(".")[2] if isinstance(den, dict) else ""
    return f"This {label} model" + (f" ({cls})" if cls else "")


__all__ = ["INPUTS", "InputSpec", "RequiredInput", "MissingInputError", "batch_keys_read", "required_inputs",
           "model_name"]
