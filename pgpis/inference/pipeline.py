"""`load_pipeline` and `Pipeline.generate`: trained stages as a PIL-in, PIL-out API (no CLI, no training data).

A :class:`Pipeline` wraps the trained LightningModule (any
:class:`~pgpis.diffusion.core.LatentDiffusion` stage: FPDM's, TruePose's, or a
method of one's own, docs/extending.md) plus the data facts the model was trained
with (image size, encoder input sizes). :meth:`Pipeline.generate` builds the
same sample dictionary the DeepFashion DataModule builds (poses rendered at the
size they are used at, images PIL-bicubic resized) and calls the module's own
``generate`` — so inference is the code path the training callbacks sample
with, including cached conditioning and batched guidance branches.

Which inputs beyond the source image and the target pose a model needs (the
source parsing map, the source pose, target keypoints) depends on its config;
:attr:`Pipeline.needs` asks the denoiser (:mod:`pgpis.inference.inputs`). What the
source photo itself can give is made from it when the call does not give it: the
parsing map by a human parser (:mod:`pgpis.parsing`, SCHP on LIP by default) and
the source keypoints by a pose estimator (:mod:`pgpis.pose`, mediapipe by default);
:attr:`Pipeline.estimated` says which were used. With those switched off
(``parser=None`` / ``source_estimator=None``) a call that lacks an input gets a
:class:`~pgpis.inference.inputs.MissingInputError` naming the input, the config
key that asks for it and how to give it.

Sources (see :func:`load_pipeline`): a Lightning checkpoint written by
``pgpis fit`` (the model config and the DataModule's hyper-parameters travel in
it; FPDM rebuilds its frozen IPF model from the export folder the config names),
or a folder written by :func:`pgpis.inference.export.export` (no Lightning state).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pgpis.data import parsing as prs
from pgpis.images import as_rgb, load_rgb, resize_image, to_tensor
from pgpis.diffusion.guidance import ClassifierFreeGuidance, CumulativeGuidance, GuidancePolicy, NoGuidance
from pgpis.diffusion.sampler import Sampler
from pgpis.errors import MissingWeightsError
from pgpis.inference.checkpoint import module_from_checkpoint
from pgpis.inference.exported import PIPELINE_CONFIG, read_exported
from pgpis.inference.inputs import (KEY_TO_INPUT, MissingInputError, RequiredInput, batch_keys_read, model_name,
                                    required_inputs)
from pgpis.inference.estimated_poses import EstimatorCache, PoseFromImage, body_from_photo
from pgpis.inference.estimated_poses import retarget_to as retarget_to_body
from pgpis.inference.hub import resolve_checkpoint
from pgpis.inference.poses import PoseInput, TargetPose, load_target_pose

#: what makes a source input the call did not give: a name / class path or a built parser / estimator, None: off
DEFAULT_PARSER, DEFAULT_SOURCE_ESTIMATOR = "schp-lip", "mediapipe"

Size = tuple[int, int]
ImageInput = Union[Image.Image, str, os.PathLike]
ParsingInput = Union[np.ndarray, Image.Image, str, os.PathLike, Tensor]
GuidanceInput = Union[GuidancePolicy, float, Sequence[float], None]


def _open_image(image: ImageInput, what: str, min_size: Optional[Size] = None) -> Image.Image:
    """A caller's image read as every entry point reads it (:func:`pgpis.images.load_rgb`): upright, RGB,
    at least `min_size` (h, w)."""
    if isinstance(image, Image.Image):
        return as_rgb(image, f"<{what}>", min_size=min_size, what=what)
    return load_rgb(image, min_size=min_size, what=what, fix="give a readable image file (.jpg, .png, ...)")


def _to_pil(image: Tensor) -> Image.Image:
    """[3, H, W] in [-1, 1] -> RGB PIL (round to nearest, as torchvision's save_image)."""
    arr = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def _read_parsing(parsing: ParsingInput) -> np.ndarray:
    if isinstance(parsing, Tensor):
        return parsing.cpu().numpy().astype(np.uint8)
    if isinstance(parsing, Image.Image):
        arr = np.asarray(parsing)
        if arr.ndim != 2:
            raise ValueError("source_parsing: a PIL parsing map must be single-channel class indices (mode 'P' or 'L'), "
                             f"got mode {parsing.mode!r}; never an RGB rendering")
        return arr.astype(np.uint8)
    if isinstance(parsing, np.ndarray):
        if parsing.ndim != 2:
            raise ValueError(f"source_parsing: expected class indices [H, W], got shape {list(parsing.shape)}")
        return parsing.astype(np.uint8)
    return prs.read_parsing(parsing)


def _is_single_pose(pose: Any) -> bool:
    """A pose (array [18, 2], file, image) rather than a list of poses."""
    if isinstance(pose, (str, os.PathLike, Image.Image, PoseFromImage)):
        return True
    if isinstance(pose, (np.ndarray, list, tuple)):
        try:
            return np.asarray(pose, dtype=np.float32).ndim == 2
        except (ValueError, TypeError):  # ragged or mixed: a list of poses
            return False
    return False


def _as_list(value: Any, single: Callable[[Any], bool]) -> list:
    return [value] if single(value) else list(value)


class Pipeline:
    """A trained FPDM or TruePose model, ready to generate from PIL images and keypoints.

    Attributes:
        module: the LightningModule (eval mode) whose ``generate`` does the sampling.
        kind: the method's declared ``kind`` (``"fpdm"``, ``"truepose"``, ...).
        image_size: (h, w) of generated images (the training ``data.image_size``).
        encoder_inputs: encoder view sizes the denoiser reads (``<enc>_source``, ``<enc>_target_pose``).
        ema: whether the weights are EMA averages.
        needs: the inputs :meth:`generate` must be given besides the source image and a target pose image
            (``"source_parsing"``, ``"source_pose"``, ``"target_keypoints"``), asked of the denoiser.
    """

    def __init__(self, module: torch.nn.Module, image_size: Sequence[int],
                 encoder_inputs: Optional[Mapping[str, Sequence[int]]] = None, *, ema: bool = False,
                 config: Optional[Mapping[str, Any]] = None, device: Union[str, torch.device, None] = None,
                 dtype: Optional[torch.dtype] = None):
        self.module = module.eval()
        self.kind = module.denoiser.method_kind()  # declared by the method (ConditionalDenoiser.kind)
        self.image_size: Size = (int(image_size[0]), int(image_size[1]))
        self.encoder_inputs: dict[str, Size] = {k: (int(v[0]), int(v[1])) for k, v in (encoder_inputs or {}).items()}
        self.ema = bool(ema)
        self.config = dict(config or {})  # the module's hyper-parameters (class paths) for export
        self._keys_read: Optional[tuple[str, ...]] = None
        self._estimators = EstimatorCache()
        self._parsers = EstimatorCache(_load_parser)
        self.estimated: dict[str, str] = {}  # input -> the parser / estimator that made it in the last generate()
        self.to(device, dtype)

    # ------------------------------------------------------------------ placement
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.denoiser.parameters()).dtype

    def to(self, device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None) -> "Pipeline":
        """Move to `device` (default: CUDA when available) and cast to `dtype` (bf16/fp16 on GPU)."""
        device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if dtype in (torch.float16,) and device.type == "cpu":
            raise ValueError("dtype float16 is not supported for CPU sampling; use torch.bfloat16 or float32 on CPU, "
                             "float16 on a GPU")
        self.module.to(device=device)
        if dtype is not None:
            self.module.to(dtype=dtype)
        return self

    def _autocast(self):
        """Mixed-dtype safety net: conditioning math that upcasts (e.g. .float()) meets low-precision weights."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ------------------------------------------------------------------ inputs
    @property
    def keys_read(self) -> tuple[str, ...]:
        """The batch keys the denoiser's ``encode_conditions`` reads (asked once, on a one-sample probe batch)."""
        if self._keys_read is None:
            size = self.image_size
            probe_pose = TargetPose(keypoints=np.full((18, 2), -1.0, dtype=np.float32))  # every point missing
            batch = self._build_batch([Image.new("RGB", (size[1], size[0]), (128, 128, 128))], [probe_pose],
                                      [np.zeros(size, dtype=np.uint8)], [probe_pose])
            with self._autocast():
                self._keys_read = batch_keys_read(self.module.denoiser, batch)
        return self._keys_read

    @property
    def required_inputs(self) -> tuple[RequiredInput, ...]:
        """What :meth:`generate` must be given besides a source image and a target pose image, with the reason
        (the config key that asks for it) and how to give it: for error messages and UIs."""
        return required_inputs(self.module.denoiser, self.config, self.keys_read)

    @property
    def needs(self) -> tuple[str, ...]:
        """Names of the :attr:`required_inputs`: ``"source_parsing"``, ``"source_pose"``, ``"target_keypoints"``."""
        return tuple(r.name for r in self.required_inputs)

    @property
    def needs_parsing(self) -> bool:
        """Whether :meth:`generate` needs ``source_parsing`` (TruePose: HPFA's mask and CAA's regions)."""
        return "source_parsing" in self.needs

    @property
    def needs_source_pose(self) -> bool:
        """Whether :meth:`generate` needs ``source_pose`` (e.g. TruePose with ``source_pose: true``)."""
        return "source_pose" in self.needs

    @property
    def needs_keypoints(self) -> bool:
        """Whether target poses must be keypoints (TruePose's parsing selection), not rendered pose images."""
        return "target_keypoints" in self.needs

    def _build_batch(self, sources: Sequence[ImageInput], poses: Sequence[TargetPose],
                     parsings: Optional[Sequence[ParsingInput]] = None,
                     source_poses: Optional[Sequence[TargetPose]] = None) -> dict[str, Any]:
        """Every batch entry the given inputs make, named and rendered as the DeepFashion DataModule does."""
        size = self.image_size
        images = [_open_image(s, "source image", size) for s in sources]
        batch: dict[str, Any] = {
            "source": torch.stack([to_tensor(resize_image(im, size)) for im in images]),
            "target_pose": torch.stack([to_tensor(p.render(size)) for p in poses]),
            "pair_index": torch.arange(len(images)),
        }
        batch["target"] = torch.zeros_like(batch["source"])  # gives the sampler the output size only
        if all(p.keypoints is not None for p in poses):
            batch["target_keypoints"] = torch.stack([torch.from_numpy(p.keypoints_at(size)) for p in poses])
        for enc, enc_size in self.encoder_inputs.items():
            batch[f"{enc}_source"] = torch.stack([to_tensor(resize_image(im, enc_size)) for im in images])
            batch[f"{enc}_target_pose"] = torch.stack([to_tensor(p.render(enc_size)) for p in poses])
        if parsings is not None:
            batch["source_parsing"] = torch.stack(
                [torch.from_numpy(prs.resize_parsing(_read_parsing(p), size).astype(np.int64)) for p in parsings])
        if source_poses is not None:  # the DataModule's source_pose: rendered at the image size from the keypoints
            batch["source_pose"] = torch.stack([to_tensor(p.render(size)) for p in source_poses])
            if all(p.keypoints is not None for p in source_poses):
                batch["source_keypoints"] = torch.stack([torch.from_numpy(p.keypoints_at(size)) for p in source_poses])
        for key, value in batch.items():
            if isinstance(value, Tensor) and value.shape[0] != len(images):
                raise ValueError(f"make_batch: {value.shape[0]} entries for '{key}' but {len(images)} source images; "
                                 "give one per source")
        return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    def make_batch(self, sources: Sequence[ImageInput], poses: Sequence[TargetPose],
                   parsings: Optional[Sequence[ParsingInput]] = None,
                   source_poses: Optional[Sequence[TargetPose]] = None) -> dict[str, Any]:
        """The DataModule's sample dictionary for (source, target pose[, source parsing][, source pose]), on the
        device; raises :class:`~pgpis.inference.inputs.MissingInputError` when an input the model reads is absent."""
        batch = self._build_batch(sources, poses, parsings, source_poses)
        missing = [k for k in self.keys_read if k in KEY_TO_INPUT and k not in batch]
        if missing:
            raise MissingInputError(required_inputs(self.module.denoiser, self.config, missing),
                                    model_name(self.module.denoiser.method_label(), self.config))
        return batch

    def guidance_policy(self, guidance: GuidanceInput) -> GuidancePolicy:
        """A policy from a number (CFG scale; FPDM: both cumulative weights), a pair (FPDM's w_s, w_f) or a policy."""
        if guidance is None:
            return self.module.guidance
        if isinstance(guidance, GuidancePolicy):
            return guidance
        groups = self.module.denoiser.condition_groups
        if isinstance(guidance, (int, float)):
            if "fusion" in groups:
                return CumulativeGuidance(float(guidance), float(guidance))
            return ClassifierFreeGuidance(float(guidance)) if float(guidance) != 1.0 else NoGuidance()
        weights = [float(w) for w in guidance]
        if len(weights) == 2 and "fusion" in groups:
            return CumulativeGuidance(*weights)
        raise ValueError(f"guidance {guidance!r}: give a number (CFG scale), a pair (source_weight, fusion_weight) for "
                         f"FPDM's cumulative guidance, or a pgpis.diffusion GuidancePolicy (model groups: {groups})")

    def sampler(self, steps: Optional[int] = None, scheduler: Optional[str] = None, eta: Optional[float] = None) -> Sampler:
        base: Sampler = self.module.sampler
        return Sampler(scheduler or base.scheduler_name, steps if steps is not None else base.num_inference_steps,
                       base.eta if eta is None else eta, base.overrides)

    # ------------------------------------------------------------------ poses from photos
    def pose_from_image(self, photo: Union[ImageInput, np.ndarray], *, estimator: Any = "mediapipe",
                        retarget_to: Union[ImageInput, np.ndarray, None] = None, **options: Any) -> np.ndarray:
        """OpenPose-18 keypoints ``float32 [18, 2]`` in the CFLD 256x176 frame, estimated on `photo`.

        The result is a `target_pose` for :meth:`generate` (or ``PoseFromImage(photo)`` there directly).
        ``estimator``: ``"mediapipe"`` (default), ``"rtmlib"``, a class path, or a built
        :class:`pgpis.pose.PoseEstimator`; ``options`` go to its constructor (built once per pipeline).
        ``retarget_to``: the source person (a photo, estimated with the same estimator, or their keypoints
        ``[18, 2]`` in the CFLD frame): the pose's bones are rescaled to that body's lengths, neck fixed
        (:func:`pgpis.pose.retarget.retarget_pose`). A photo with no person is a DataFormatError.
        """
        est = self._estimators.get(estimator, options)
        body = body_from_photo(photo, est)
        if retarget_to is None:
            return body
        if isinstance(retarget_to, np.ndarray) and retarget_to.ndim == 2:
            source = retarget_to
        else:
            source = body_from_photo(retarget_to, est, what="source photo (for --retarget)")
        return retarget_to_body(body, source)

    def _resolve_estimated(self, pose: Any, source: ImageInput, source_pose: Optional[TargetPose]) -> Any:
        """A :class:`PoseFromImage` as keypoints (CFLD frame), retargeted to this sample's source if asked."""
        if not isinstance(pose, PoseFromImage):
            return pose
        target: Union[ImageInput, np.ndarray, None] = None
        if pose.retarget:
            known = source_pose.keypoints if source_pose is not None else None
            target = known if known is not None else source
        return TargetPose(keypoints=self.pose_from_image(pose.image, estimator=pose.estimator, retarget_to=target,
                                                         **dict(pose.options)))

    # ------------------------------------------------------------------ source inputs from the source photo
    def parse_source(self, photo: Union[ImageInput, np.ndarray], *, parser: Any = DEFAULT_PARSER,
                     **options: Any) -> np.ndarray:
        """``uint8 [H, W]`` LIP class map of a source photo (at the photo's size), the ``source_parsing`` TruePose reads.

        ``parser``: ``"schp-lip"`` (default, SCHP on LIP: what TruePose used), ``"schp-atr"``, a class path or a built
        parser (:mod:`pgpis.parsing`, docs/parsing.md); ``options`` go to its constructor (built once per pipeline).
        """
        from pgpis.parsing import parse_lip

        return parse_lip(self._parsers.get(parser, options), _photo_pixels(photo))

    def source_keypoints(self, photo: Union[ImageInput, np.ndarray], *, estimator: Any = DEFAULT_SOURCE_ESTIMATOR,
                         **options: Any) -> np.ndarray:
        """OpenPose-18 ``float32 [18, 2]`` of the source person in the CFLD 256x176 frame, scaled per axis as the
        photo is resized to the model's size (the keypoints belong to it); a photo with no person is an error."""
        est = self._estimators.get(estimator, options)
        return body_from_photo(_photo_pixels(photo), est, what="source photo", fit="stretch")

    def _estimate_source_inputs(self, sources: Sequence[Any], parsings: Optional[list], source_poses: Optional[list],
                                parser: Any, source_estimator: Any) -> tuple[Optional[list], Optional[list]]:
        """Fill in the parsing map / source pose the model reads and the call did not give, from the source photos
        (each distinct photo once), recording in :attr:`estimated` which parser / estimator made them."""
        if parsings is None and parser is not None and self.needs_parsing:
            built = self._parsers.get(parser)
            maps: dict[Any, np.ndarray] = {}
            for s in sources:
                if _photo_key(s) not in maps:
                    maps[_photo_key(s)] = self.parse_source(s, parser=built)
            parsings = [maps[_photo_key(s)] for s in sources]
            self.estimated["source_parsing"] = str(getattr(built, "name", type(built).__name__))
        if source_poses is None and source_estimator is not None and self.needs_source_pose:
            est = self._estimators.get(source_estimator)
            bodies: dict[Any, TargetPose] = {}
            for s in sources:
                if _photo_key(s) not in bodies:
                    bodies[_photo_key(s)] = TargetPose(keypoints=self.source_keypoints(s, estimator=est))
            source_poses = [bodies[_photo_key(s)] for s in sources]
            self.estimated["source_pose"] = str(getattr(est, "name", type(est).__name__))
        return parsings, source_poses

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        source_image: Union[ImageInput, Sequence[ImageInput]],
        target_pose: Union[PoseInput, Sequence[PoseInput]],
        *,
        source_parsing: Union[ParsingInput, Sequence[ParsingInput], None] = None,
        source_pose: Union[PoseInput, Sequence[PoseInput], None] = None,
        guidance: GuidanceInput = None,
        steps: Optional[int] = None,
        seed: Union[int, Sequence[int]] = 0,
        scheduler: Optional[str] = None,
        eta: Optional[float] = None,
        pose_frame: Size = (256, 176),
        batch_size: Optional[int] = None,
        progress: bool = False,
        step_hook: Optional[Callable] = None,
        parser: Any = DEFAULT_PARSER,
        source_estimator: Any = DEFAULT_SOURCE_ESTIMATOR,
    ) -> Union[Image.Image, list[Image.Image]]:
        """Images of the source person(s) in the target pose(s).

        Args:
            source_image: a PIL image or file, or a list of them.
            target_pose: OpenPose-18 keypoints ``[18, 2]`` (x, y) in `pose_frame` (default the CFLD 256x176
                frame), a keypoint file (PCDMs ``.txt``, CFLD annotation ``.csv[#name]``, ``.json``), a rendered
                pose image, a ``PoseFromImage(photo[, estimator, retarget=True])`` (the pose estimated on another
                person's photo, see :meth:`pose_from_image`), or a list of these. One source with many poses
                (or the reverse) broadcasts.
            source_parsing: LIP class map(s) of the source, when the model reads them (:attr:`needs`; TruePose).
                Not given: made from the source photo by `parser`.
            source_pose: the source person's pose(s), in the forms `target_pose` takes, when the model reads it
                (:attr:`needs`; TruePose with ``source_pose: true``); rendered as the DataModule renders it.
                Not given: estimated on the source photo by `source_estimator`.
            parser: the human parser for a missing `source_parsing` (:meth:`parse_source`; a name, class path or
                built parser); None: a missing map is a MissingInputError.
            source_estimator: the pose estimator for a missing `source_pose` (:meth:`source_keypoints`); None: off.
                :attr:`estimated` names the parser / estimator a call used.
            guidance: number (CFG scale; FPDM: w_s = w_f), pair (FPDM's w_s, w_f) or a GuidancePolicy;
                default: the model's (FPDM: cumulative 2.0/2.0, TruePose: CFG 3.5).
            steps, scheduler, eta: sampling (default: the model's sampler; scheduler is a diffusers class name).
            seed: base seed (sample i uses seed + i) or one seed per sample; same seed, same image, any batch.
            batch_size: samples per denoiser batch (default: all at once).
            progress: show a tqdm bar over the denoising steps.
        Returns:
            one PIL image for a single (source, pose), else a list in input order.
        """
        sources = _as_list(source_image, lambda v: isinstance(v, (str, os.PathLike, Image.Image)))
        poses = _as_list(target_pose, _is_single_pose)
        single = len(sources) == 1 and len(poses) == 1
        n = max(len(sources), len(poses))
        if len(sources) not in (1, n) or len(poses) not in (1, n):
            raise ValueError(f"generate: {len(sources)} source images and {len(poses)} target poses; give equally many, "
                             "or one of either")
        sources, poses = sources * (n // len(sources)), poses * (n // len(poses))
        parsings = None
        if source_parsing is not None:
            parsings = _as_list(source_parsing, lambda v: not isinstance(v, (list, tuple)))
            if len(parsings) not in (1, n):
                raise ValueError(f"generate: {len(parsings)} parsing maps for {n} samples")
            parsings = parsings * (n // len(parsings))
        source_poses = None
        if source_pose is not None:
            given = _as_list(source_pose, _is_single_pose)
            if len(given) not in (1, n):
                raise ValueError(f"generate: {len(given)} source poses for {n} samples")
            source_poses = [load_target_pose(p, pose_frame, what="source pose") for p in given] * (n // len(given))
        seeds = [int(seed) + i for i in range(n)] if isinstance(seed, int) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"generate: {len(seeds)} seeds for {n} samples")
        poses = [self._resolve_estimated(p, s, source_poses[i] if source_poses is not None else None)
                 for i, (p, s) in enumerate(zip(poses, sources))]
        targets = [p if isinstance(p, TargetPose) else load_target_pose(p, pose_frame) for p in poses]
        self.estimated = {}
        if not self.needs_keypoints or all(t.keypoints is not None for t in targets):  # else: that error first
            parsings, source_poses = self._estimate_source_inputs(sources, parsings, source_poses, parser,
                                                                  source_estimator)
        policy, sampler = self.guidance_policy(guidance), self.sampler(steps, scheduler, eta)
        chunk = batch_size or n
        bar = None
        out: list[Image.Image] = []
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            batch = self.make_batch(sources[sl], targets[sl], parsings[sl] if parsings is not None else None,
                                    source_poses[sl] if source_poses is not None else None)
            if progress and bar is None:  # after the first batch: a missing input fails before the bar shows
                from tqdm.auto import tqdm

                bar = tqdm(total=sampler.num_inference_steps * -(-n // chunk), desc="denoising", unit="step")
            hook = _progress_hook(bar, step_hook)
            with self._autocast():
                images = self.module.generate(batch, guidance=policy, sampler=sampler, seeds=seeds[sl], step_hook=hook)
            out.extend(_to_pil(im) for im in images)
        if bar is not None:
            bar.close()
        return out[0] if single else out


def _load_parser(name: str, **options: Any) -> Any:
    from pgpis.parsing import load_parser

    return load_parser(name, **options)


def _photo_pixels(photo: Union[ImageInput, np.ndarray]) -> np.ndarray:
    """RGB uint8 pixels of a source photo, opened as the batch opens it (so a map lands on the pixels used)."""
    return photo if isinstance(photo, np.ndarray) else np.asarray(_open_image(photo, "source image"))


def _photo_key(photo: Any) -> Any:
    """The same photo given twice (broadcast to many poses) is estimated once."""
    return str(Path(photo)) if isinstance(photo, (str, os.PathLike)) else id(photo)


def _progress_hook(bar, inner: Optional[Callable]) -> Optional[Callable]:
    if bar is None:
        return inner

    def hook(latents: Tensor, t: Tensor, i: int, sched) -> Tensor:
        bar.update(1)
        return inner(latents, t, i, sched) if inner is not None else latents

    return hook


# ---------------------------------------------------------------------------------------------- loading

def load_pipeline(path: Union[str, os.PathLike], *, device: Union[str, torch.device, None] = None,
                  dtype: Optional[torch.dtype] = None, fusion_model: Union[str, os.PathLike, None] = None,
                  image_size: Optional[Sequence[int]] = None,
                  encoder_inputs: Optional[Mapping[str, Sequence[int]]] = None,
                  trust_checkpoint: bool = False, revision: Optional[str] = None) -> Pipeline:
    """Load a trained FPDM or TruePose model for inference.

    Args:
        path: a ``.ckpt`` written by ``pgpis fit`` (a latent-diffusion stage), a folder written
            by ``pgpis export`` (holds ``pipeline.json``), or the hub id (``ORG/NAME``) of such a folder pushed
            to the Hugging Face Hub (``pgpis push``; read from the HF cache offline, :mod:`pgpis.inference.hub`).
        revision: with a hub id, the branch, tag or commit to load (default ``main``).
        device, dtype: where and in what precision to run (e.g. ``"cuda"``, ``torch.bfloat16``).
        fusion_model: FPDM checkpoints only: the IPF export folder, when it moved since training.
        image_size, encoder_inputs: override the sizes read from the checkpoint's DataModule settings.
        trust_checkpoint: read a ``.ckpt`` with full unpickling (it may run code): only for one's own files that
            the default weights-only read refuses (:class:`~pgpis.errors.UnsafeCheckpointError`).
    """
    path = resolve_checkpoint(path, revision)
    if path.is_dir():
        if not (path / PIPELINE_CONFIG).is_file():
            raise MissingWeightsError(
                "pgpis inference folder", path,
                f"expected {PIPELINE_CONFIG} there (a folder written by `pgpis export CKPT OUT_DIR`), or give the "
                "Lightning checkpoint itself (e.g. outputs/ldm/.../checkpoints/last.ckpt)")
        return load_exported(path, device=device, dtype=dtype)
    if not path.is_file():
        raise MissingWeightsError(
            "FPDM / TruePose checkpoint", path,
            "give a Lightning checkpoint written by `pgpis fit` (`make train-ldm` / `make train-truepose` write "
            "outputs/<stage>/.../checkpoints/last.ckpt), a folder written by `pgpis export`, or the hub id "
            "ORG/NAME of one pushed to the Hugging Face Hub")
    module, config, data, ema = module_from_checkpoint(path, fusion_model=fusion_model, trust_checkpoint=trust_checkpoint)
    size = image_size or data.get("image_size")
    if size is None:
        raise ValueError(f"{path}: the checkpoint has no DataModule settings (data.image_size); pass image_size=(h, w)")
    enc = encoder_inputs if encoder_inputs is not None else (data.get("encoder_inputs") or {})
    return Pipeline(module, size, enc, ema=ema, config=config, device=device, dtype=dtype)


def load_exported(folder: Union[str, os.PathLike], *, device: Union[str, torch.device, None] = None,
                  dtype: Optional[torch.dtype] = None) -> Pipeline:
    """A :class:`Pipeline` from a folder written by ``pgpis export`` (architecture from configs, weights from
    safetensors; :func:`pgpis.inference.exported.read_exported`)."""
    module, meta = read_exported(folder)
    data = meta.get("data", {})
    return Pipeline(module, data["image_size"], data.get("encoder_inputs"), ema=bool(meta.get("ema")),
                    config=meta["module"], device=device, dtype=dtype)


__all__ = ["Pipeline", "load_pipeline", "load_exported"]
