"""`DDIMInference`: generate a whole split to PNG files, then score the folder.

* Files are named ``<source stem>_to_<target stem>.png`` (docs/CONVENTIONS.md).
* Work is split into fixed batches of pair indices, round-robin over ranks
  (:func:`pgpis.metrics.states.my_batches`): every pair is generated exactly
  once, with no ``DistributedSampler`` padding duplicates; per-sample seeds
  (from ``pair_index``) make a file independent of batch and rank.
* Resumable after a kill (:mod:`pgpis.output_files`): files are written atomically
  (temp file + ``os.replace``); on a re-run valid files are kept, missing ones
  generated, and truncated or unreadable ones (a crash, an older non-atomic
  writer) regenerated. A fixed batch with anything to write is generated whole
  and only its missing/damaged files are written, so a resumed split equals an
  uninterrupted run pixel for pixel; a pair listed twice is written once. The
  log and ``metrics_path`` (``files``) say how many were kept, regenerated and
  generated (summed over ranks). The folder's settings record (weights
  fingerprint, sampler, guidance, seed, batch size, pairs) is compared first:
  files from other settings (a later checkpoint, another sampler) are not kept
  but regenerated, with a warning. Set ``overwrite`` to regenerate everything.
* After a barrier, every rank scores its share of the files (read back from
  disk, so skipped files count) with :class:`~pgpis.callbacks.metrics.PairMetrics`
  next to the copy-source and background-only baselines; the gather is a
  collective all ranks join. Rank 0 prints the table, writes ``metrics_path``
  (JSON) and a grid PNG. With ``protocol`` set, the folder is also handed to
  :func:`pgpis.data.deepfashion.evaluate_deepfashion` (SSIM variants / LPIPS / FID at the
  protocol's report size).

It runs at the end of ``pgpis test`` (``on_test_epoch_end``) and, with
``after_fit: true``, at the end of ``pgpis fit``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from pgpis.callbacks.metrics import SSIM_DESCRIPTION, PairMetrics, format_table
from pgpis.callbacks.video import dataset_clips, generate_clip, my_clips, score_clips
from pgpis.images import load_rgb, to_tensor
from pgpis.diffusion.core import move_batch
from pgpis.diffusion.guidance import GuidancePolicy
from pgpis.diffusion.sampler import Sampler
from pgpis.models.video import VideoSampling
from pgpis.grids import DEFAULT_MIN_CELL_HEIGHT, upscale_factor, upscale_nearest
from pgpis.metrics.pairs import generated_name
from pgpis.metrics.states import broadcast_from_rank0, my_batches, rank_and_world
from pgpis.metrics.temporal import FLOW_METHODS, TemporalResult, format_temporal
from pgpis.output_files import (SplitPlan, names_digest, output_folder, plan_split, read_settings, settings_change,
                                weights_fingerprint, write_image, write_settings)

log = logging.getLogger(__name__)


def save_png(image: Tensor, path: Path, scale: int = 1) -> None:
    """[3, H, W] in [-1, 1] -> 8-bit RGB PNG, written atomically (:func:`pgpis.output_files.write_image`).

    `scale` > 1 upscales with nearest neighbour after quantising (grids only; samples stay at native size).
    """
    arr = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    write_image(upscale_nearest(Image.fromarray(arr), scale), path)


def load_png(path: Path) -> Tensor:
    """8-bit PNG -> [3, H, W] in [-1, 1]."""
    return to_tensor(load_rgb(path, fix="delete it; the callback writes it again"))


def eval_dataset(trainer: pl.Trainer, split: str) -> tuple[Dataset, Any]:
    """The split's dataset and collate function, taken from the Trainer's DataModule / dataloaders."""
    dm = trainer.datamodule
    loader = None
    if dm is not None:
        if split == "test":
            dm.setup("test")
            loader = dm.test_dataloader()
        elif split in ("val", "validation"):
            dm.setup("validate")
            loader = dm.val_dataloader()
    if loader is None:
        loader = trainer.test_dataloaders if split == "test" else trainer.val_dataloaders
    if isinstance(loader, (list, tuple)):
        loader = loader[0]
    if loader is None:
        raise ValueError(f"DDIMInference: no '{split}' dataloader; give the Trainer a DataModule with one")
    return loader.dataset, loader.collate_fn


class DDIMInference(pl.Callback):
    """Generate every pair of a split to ``output_dir``, resumably and sharded over ranks, then score it.

    Args:
        output_dir: folder of the generated PNGs.
        split: "test" (default) or "val".
        guidance: policy for this run (default: the model's).
        sampler: sampling settings for this run (default: the model's).
        batch_size: pairs per generation batch.
        max_pairs: only the first N pairs (quick looks); None = all.
        metrics_path: JSON with ``samples``, ``copy_source``, ``background_only`` (each ssim/psnr/fg_psnr).
        grid_path: PNG grid (source | target pose | target | sample) of `grid_pairs` pairs spread evenly over
            the generated ones (consecutive pairs often share a source; spread rows show several people).
        min_cell_height: the grid's cells are upscaled (nearest neighbour, integer factor) to at least this
            many pixels tall so a person can see them; 0 keeps the native size. The generated files and the
            metrics stay at the native size.
        after_fit: also run at the end of ``fit``.
        overwrite: regenerate existing files.
        protocol: also run :func:`pgpis.data.deepfashion.evaluate_deepfashion` with this named protocol.
        video: clip-wise consistent sampling (shared initial noise, cross-frame attention) for datasets whose
            pairs form clips (Phoenix's test videos); None or all off = frame-wise. Such datasets also get the
            temporal metrics (``temporal`` in ``metrics_path``, :mod:`pgpis.callbacks.video`), with `flow`.
    """

    def __init__(
        self,
        output_dir: str = "outputs/ldm/samples",
        split: str = "test",
        guidance: Optional[GuidancePolicy] = None,
        sampler: Optional[Sampler] = None,
        batch_size: int = 32,
        max_pairs: Optional[int] = None,
        metrics_path: Optional[str] = "outputs/ldm/metrics.json",
        grid_path: Optional[str] = "outputs/ldm/grid.png",
        grid_pairs: int = 8,
        min_cell_height: int = DEFAULT_MIN_CELL_HEIGHT,
        after_fit: bool = False,
        overwrite: bool = False,
        protocol: Optional[str] = None,
        video: Optional[VideoSampling] = None,
        flow: str = "dis",
    ):
        self.output_dir = Path(output_dir)
        self.split, self.guidance, self.sampler = split, guidance, sampler
        self.batch_size, self.max_pairs = int(batch_size), max_pairs
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.grid_path = Path(grid_path) if grid_path else None
        self.grid_pairs, self.after_fit, self.overwrite, self.protocol = grid_pairs, after_fit, overwrite, protocol
        self.min_cell_height = int(min_cell_height)
        if flow not in FLOW_METHODS:
            raise ValueError(f"DDIMInference: flow '{flow}' is not one of {', '.join(FLOW_METHODS)}")
        self.video, self.flow = video, flow
        self.results: dict[str, Any] | None = None
        self.plan: SplitPlan | None = None  # this rank's last generation plan (kept / regenerated / generated)

    # ------------------------------------------------------------------ hooks
    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.after_fit:
            self.run(trainer, pl_module)

    # ------------------------------------------------------------------ work
    @staticmethod
    def _names(item: dict[str, Any]) -> tuple[str, str]:
        return str(item["source_name"]), str(item["target_name"])

    @staticmethod
    def _batches(dataset: Dataset, collate, batches: Sequence[range]):
        """(indices, batch) for each of the given fixed batches, composed exactly as listed."""
        loader = DataLoader(dataset, batch_sampler=[list(r) for r in batches], collate_fn=collate)
        for r, batch in zip(batches, loader):
            yield list(r), batch

    @torch.no_grad()
    def generate(self, pl_module, dataset: Dataset, collate, n: int) -> int:
        """Generate this rank's missing and damaged files (see :func:`pgpis.output_files.plan_split`).

        Returns how many files were written; ``self.plan`` holds the kept / regenerated / generated counts.
        """
        output_folder(self.output_dir, "DDIMInference output_dir")
        paths = [self.output_dir / self._file(dataset, i) for i in range(n)]  # all: a duplicate's owner is global
        size = tuple(int(v) for v in dataset[0]["target"].shape[-2:]) if n else None
        settings = self._settings(pl_module, paths)
        restart = "overwrite" if self.overwrite else None
        if restart is None:  # decided on rank 0, so every rank deletes and regenerates its share, or none does
            changed = broadcast_from_rank0(settings_change(read_settings(self.output_dir), settings)
                                           if rank_and_world()[0] == 0 else None)
            if changed:
                restart = f"settings changed: {changed}"
                rank_zero_warn(f"DDIMInference: {self.output_dir} holds images generated with other settings "
                               f"({changed}); regenerating them all")
        clips = dataset_clips(dataset, n) if self.video is not None and self.video.enabled else None
        if self.video is not None and self.video.enabled and clips is None:
            raise ValueError(f"DDIMInference: video sampling ({self.video.describe()}) needs a dataset whose pairs form "
                             f"clips (a `sequences()` method, e.g. Phoenix's test videos); {type(dataset).__name__} has none")
        batches = my_clips(clips) if clips is not None else my_batches(n, self.batch_size)
        plan = self.plan = plan_split(paths, batches, restart=restart, size=size)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every share's old files are gone before the new record says otherwise
        if rank_and_world()[0] == 0:
            write_settings(self.output_dir, settings)
        redone = {i: why for i, why in plan.write.items() if why not in ("missing", plan.restart)}  # damaged
        for i, why in sorted(redone.items()):
            log.warning("DDIMInference: regenerating %s: %s", paths[i], why)
        was_training = pl_module.training
        pl_module.eval()
        for clip in (plan.batches if clips is not None else ()):  # one clip per batch
            images = generate_clip(pl_module, dataset, collate, clip, self.video, guidance=self.guidance,
                                   sampler=self.sampler)
            for i, img in zip(clip, images):
                if i in plan.write:
                    save_png(img, paths[i])
        for idx, batch in (self._batches(dataset, collate, plan.batches) if clips is None else ()):
            if "pair_index" not in batch:  # the per-sample seeds come from it: same image whatever else is redone
                batch["pair_index"] = torch.as_tensor(idx)
            batch = move_batch(batch, pl_module.device)
            images = pl_module.generate(batch, guidance=self.guidance, sampler=self.sampler)
            for i, img in zip(idx, images):
                if i in plan.write:
                    save_png(img, paths[i])
        pl_module.train(was_training)
        return len(plan.write)

    def _settings(self, pl_module, paths: Sequence[Path]) -> dict[str, Any]:
        """What decides the files' pixels (recorded beside them; a re-run with other settings starts over)."""
        sampler = self.sampler or pl_module.sampler
        return {"tool": "DDIMInference", "split": self.split, "pairs": names_digest(paths),
                "batch_size": self.batch_size, "guidance": repr(self.guidance or getattr(pl_module, "guidance", None)),
                "sampler": repr({k: v for k, v in vars(sampler).items() if k != "scheduler_cls"}),
                "seed": getattr(pl_module, "seed", None), "weights": weights_fingerprint(pl_module),
                "device": pl_module.device.type,
                **({"video": self.video.as_dict()} if self.video is not None and self.video.enabled else {})}

    def _file(self, dataset: Dataset, i: int) -> str:
        pairs = getattr(dataset, "pairs", None)  # DeepFashionDataset keeps (source, target) names: no image load
        if pairs is not None:
            s, t = pairs[i]
        elif callable(getattr(dataset, "names", None)):  # PhoenixDataset
            s, t = dataset.names(i)
        else:
            s, t = self._names(dataset[i])
        return generated_name(s, t)

    @torch.no_grad()
    def score(self, pl_module, dataset: Dataset, collate, n: int) -> dict[str, Any]:
        """Metrics of the files on disk vs the targets, with the baselines (collective)."""
        metrics = PairMetrics().to(pl_module.device)
        batches = my_batches(n, self.batch_size)
        if not batches:
            metrics.update_empty()
        for idx, batch in self._batches(dataset, collate, batches):
            batch = move_batch(batch, pl_module.device)
            preds = torch.stack([load_png(self.output_dir / generated_name(s, t))
                                 for s, t in zip(batch["source_name"], batch["target_name"])]).to(pl_module.device)
            index = torch.as_tensor(idx, device=pl_module.device)
            target_key = getattr(pl_module, "target_key", "target")
            metrics.update("samples", index, preds, batch[target_key], batch.get("target_parsing"))
            metrics.update_baselines(index, batch, target_key)
        return metrics.compute()

    def write_grid(self, dataset: Dataset, collate, n: int) -> None:
        from torchvision.utils import make_grid

        k = min(self.grid_pairs, n)
        picks = sorted({round(j * (n - 1) / max(k - 1, 1)) for j in range(k)})
        batch = collate([dataset[i] for i in picks])
        k = len(picks)
        rows = []
        for j in range(k):
            sample = load_png(self.output_dir / generated_name(batch["source_name"][j], batch["target_name"][j]))
            rows += [batch["source"][j], batch["target_pose"][j], batch["target"][j], sample]
        grid = make_grid(torch.stack(rows), nrow=4, padding=1, pad_value=1.0, normalize=True, value_range=(-1, 1))
        self.grid_path.parent.mkdir(parents=True, exist_ok=True)
        scale = upscale_factor(int(batch["target"].shape[-2]), self.min_cell_height)
        save_png(grid * 2 - 1, self.grid_path, scale=scale)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        dataset, collate = eval_dataset(trainer, self.split)
        n = len(dataset) if self.max_pairs is None else min(len(dataset), int(self.max_pairs))
        self.generate(pl_module, dataset, collate, n)
        files = self._total_counts(trainer, pl_module)
        trainer.strategy.barrier("ddim_inference_generated")
        results: dict[str, Any] = self.score(pl_module, dataset, collate, n)
        results["files"] = files
        results["settings"] = {
            "split": self.split, "n_pairs": n, "image_size": list(dataset[0]["target"].shape[-2:]),
            "ssim": SSIM_DESCRIPTION, "fg_psnr": "PSNR over the target's parsing foreground (parsing != 0)",
            "guidance": repr(self.guidance or getattr(pl_module, "guidance", None)),
            "sampler": vars(self.sampler or pl_module.sampler).get("scheduler_name"),
            "steps": (self.sampler or pl_module.sampler).num_inference_steps,
            "global_step": trainer.global_step,
        }
        if self.video is not None:
            results["settings"]["video_sampling"] = self.video.as_dict()
        clips = dataset_clips(dataset, n)
        if clips:
            results["temporal"] = score_clips(dataset, clips, self.output_dir, flow=self.flow,
                                              target_key=getattr(pl_module, "target_key", "target"))
        if self.protocol is not None:
            results["protocol"] = self._protocol_metrics(trainer)
        rank, _ = rank_and_world()
        if rank == 0 and trainer.is_global_zero:
            if self.grid_path is not None:
                self.write_grid(dataset, collate, n)
            if self.metrics_path is not None:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                self.metrics_path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        table = format_table({k: v for k, v in results.items() if k in ("samples", "copy_source", "background_only")})
        rank_zero_info(f"DDIMInference: {n} pairs of '{self.split}' in {self.output_dir}: {files['kept']} kept, "
                       f"{files['regenerated']} regenerated (damaged or overwrite), {files['generated']} generated"
                       + (f", {files['duplicates']} duplicate pairs written once" if files["duplicates"] else "")
                       + f"\n{table}" + (f"\n{format_temporal(TemporalResult.from_dict(results['temporal']))}"
                                          if "temporal" in results else ""))
        for name in ("samples", "copy_source", "background_only"):
            for m in ("ssim", "psnr", "fg_psnr"):
                if results[name].get(m) is not None and trainer.logger is not None:
                    trainer.logger.log_metrics({f"{self.split}_{name}/{m}": results[name][m]}, step=trainer.global_step)
        self.results = results
        return results

    def _total_counts(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int]:
        """The plan's counts summed over ranks (a collective every rank joins)."""
        assert self.plan is not None
        keys = ("kept", "regenerated", "generated", "duplicates")
        mine = torch.tensor([self.plan.counts()[k] for k in keys], dtype=torch.long, device=pl_module.device)
        total = trainer.strategy.reduce(mine, reduce_op="sum")
        return dict(zip(keys, (int(v) for v in total.tolist())))

    def _protocol_metrics(self, trainer: pl.Trainer) -> dict[str, Any]:
        from pgpis.data.deepfashion.evaluate import evaluate_deepfashion

        root = getattr(getattr(trainer.datamodule, "hparams", {}), "get", lambda *_: None)("root")
        if root is None:
            raise ValueError("DDIMInference: protocol evaluation needs a DeepFashion DataModule with a `root`")
        split = "test" if self.split == "test" else "train"
        return evaluate_deepfashion(root, split, self.output_dir, self.protocol, allow_missing=True).to_dict()
