"""Paper-scale training steps on a GPU, online vs from the feature store: s/step, images/s, peak memory, MFU.

The FPDM and TruePose presets as experiments/deepfashion/{fpdm,truepose}.yaml build them (random weights:
benchmarks/_paper_models.py maps every hub id to its architecture), at the YAML's 512x352, bf16 autocast
(the YAML's ``precision: bf16-mixed``), fused AdamW, every condition kept (the most work a step can do):

* **online**: ``diffusion_loss`` + ``backward`` + ``optimizer.step`` on the pixel batch; every frozen
  encoder runs;
* **store**: the same step on the batch the feature store serves: the ``stored/...`` tensors are
  computed once by the store's own part encoders (``pgpis.store.parts``, what ``pgpis data cache``
  writes), and the frozen networks the store replaces are removed from the model, as training from a
  store never builds them (the VAE stays: it decodes samples).

Each variant is a ``+``-joined set of what PyTorch already has, measured one by one: ``base`` (the YAML),
``channels_last`` (UNets and VAE), ``frozen_bf16`` (frozen encoders' weights in bf16), ``compile``
(``torch.compile`` of the UNets), ``ckpt`` (gradient checkpointing), ``bN`` (micro-batch N instead of
``--batch``). **MFU** = the step's model FLOPs (``torch.utils.flop_counter`` on one eager step without
recomputation, as benchmarks/bench_paper_flops.py counts them) / seconds per step / the GPU's dense bf16
peak (``--peak-tflops``; known for H100/H200 SXM 989, A100 312).

    python benchmarks/bench_paper_step_gpu.py --json $OUT/steps.json            # on a GPU (one short run)
    python benchmarks/bench_paper_step_gpu.py --tiny --device cpu --steps 1     # wiring check (tests)
    python benchmarks/bench_paper_step_gpu.py --device cpu --unet-preset cpu-small --size 128 88 --steps 1
                                                      # the paper's frozen networks and store parts, on a CPU

Without CUDA (and without ``--device cpu``) it says so and exits 0, so ``make bench`` can list it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from _paper_models import build_paper_model, read_yaml, weightless  # noqa: E402
from bench_truepose_cache import person_batch  # noqa: E402
from pgpis.diffusion.core import move_batch  # noqa: E402
from pgpis.diffusion.denoiser import STORED_PREFIX  # noqa: E402
from pgpis.models.encoders import EncoderPreprocess  # noqa: E402
from pgpis.optim import adamw  # noqa: E402
from pgpis.store.parts import available_parts, served_keys  # noqa: E402

PRESETS = {"paper": {"fpdm": ("experiments/deepfashion/fpdm.yaml", "experiments/deepfashion/ipf.yaml"),
                     "truepose": ("experiments/deepfashion/truepose.yaml", None)},
           "tiny": {"fpdm": ("experiments/tiny/fpdm.yaml", "experiments/tiny/ipf.yaml"),
                    "truepose": ("experiments/tiny/truepose.yaml", None)}}
#: dense bf16 peak TFLOP/s by device-name fragment (NVIDIA data sheets, SXM parts)
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}
FROZEN = {"dino": "source_encoder", "fusion": "fusion_encoder", "clip": "clip"}  # store part -> denoiser attribute


class NotBuilt:
    """Stands where training from a store has no network: calling it is a bug in the store path."""

    def __init__(self, part: str):
        self.part = part

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"the frozen network of '{self.part}' ran although the batch carries it")


def pixel_batch(config: str, batch: int, size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """A person-like batch at the YAML's image size (or `size`), with every encoder view its DataModule adds."""
    data = read_yaml(config)["data"]["init_args"]
    h, w = size or data["image_size"]
    out = person_batch(batch, h, w)
    out["target"] = out["source"].flip(-1)
    out["source_pose"] = out["target_pose"].flip(-1)
    for enc, (eh, ew) in (data.get("encoder_inputs") or {}).items():
        resize = lambda x: torch.nn.functional.interpolate(x, size=(eh, ew), mode="bilinear")  # noqa: E731
        out[f"{enc}_source"], out[f"{enc}_target"] = resize(out["source"]), resize(out["target"])
        out[f"{enc}_target_pose"] = resize(out["target_pose"])
    return out


@torch.no_grad()
def stored_batch(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`batch` plus what a store of every frozen part serves, computed by the store's own encoders."""
    out = dict(batch)
    for name, spec in available_parts(model).items():
        for role, served in served_keys(name, spec.unit).items():
            # image parts read the source's keys; the latents part reads the target's, so its source row swaps
            view = batch if role != "source" or name != "latents" else {**batch, model.target_key: batch["source"]}
            out[STORED_PREFIX + served] = spec.encode(view)
    return out


def drop_frozen(model: nn.Module, parts: list[str]) -> None:
    """Remove the frozen networks a store replaces (a store run never builds them)."""
    den = model.denoiser
    for part in parts:
        attr = FROZEN.get(part)
        if attr and isinstance(getattr(den, attr, None), nn.Module):
            del den._modules[attr]
            setattr(den, attr, NotBuilt(part))


def unets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    den = model.denoiser
    return [(den, n) for n in ("unet", "target_net", "source_net") if isinstance(getattr(den, n, None), nn.Module)]


def apply(model: nn.Module, opts: set[str]) -> None:
    """The variant's changes, in place (before the optimizer is built)."""
    if "ckpt" in opts:
        model.denoiser.enable_gradient_checkpointing()
    else:
        for owner, name in unets(model):
            getattr(owner, name).disable_gradient_checkpointing()
    if "channels_last" in opts:
        for owner, name in unets(model):
            getattr(owner, name).to(memory_format=torch.channels_last)
        model.first_stage.to(memory_format=torch.channels_last)
    if "frozen_bf16" in opts:
        for attr in FROZEN.values():
            module = getattr(model.denoiser, attr, None)
            if isinstance(module, nn.Module) and not any(p.requires_grad for p in module.parameters()):
                module.to(torch.bfloat16)
                for sub in module.modules():  # resize + normalise stay fp32 (bicubic antialias has no CPU bf16)
                    if isinstance(sub, EncoderPreprocess):
                        sub.float()
    if "compile" in opts:  # in place (nn.Module.compile): submodule names stay, HPFA/CAA look layers up by name
        for owner, name in unets(model):
            getattr(owner, name).compile()


def micro_batch(opts: set[str], default: int) -> int:
    sizes = [int(o[1:]) for o in opts if o.startswith("b") and o[1:].isdigit()]
    return sizes[-1] if sizes else default


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def run_variant(method: str, preset: str, mode: str, variant: str, args: argparse.Namespace,
                device: torch.device) -> dict[str, Any]:
    config, ipf = PRESETS[preset][method]
    opts = set(variant.split("+")) - {"base"}
    b = micro_batch(opts, args.batch)
    torch.manual_seed(0)
    overrides: dict[str, Any] = {"frozen_cache_size": 0}  # no memoised frozen outputs: `online` runs its encoders
    if args.unet_preset:  # wiring checks on the CPU: the paper's frozen networks around small UNets
        spec = weightless(read_yaml(config)["model"])["init_args"]["denoiser"]["init_args"].get("unet") or {}
        overrides["unet"] = {**spec, "preset": args.unet_preset}
    with torch.device(device):
        model = build_paper_model(config, ipf, overrides)
    model.to(device).train()
    batch = move_batch(pixel_batch(config, b, args.size), device)
    if mode == "store":
        batch = stored_batch(model, batch)
        drop_frozen(model, list(available_parts_names(batch)))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    keep = model.denoiser.all_kept(b, device)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def loss_backward() -> torch.Tensor:
        with autocast:
            loss = model.diffusion_loss(batch, keep=keep)
        loss.backward()
        return loss

    for owner, name in unets(model):  # model FLOPs: counted without checkpointing's recomputation
        getattr(owner, name).disable_gradient_checkpointing()
    flops = count_flops(loss_backward)
    model.zero_grad(set_to_none=True)
    apply(model, opts)
    opt = adamw(trainable, lr=1e-5, weight_decay=1e-2)

    def step() -> float:
        loss = loss_backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync(device)
    warm = time.perf_counter() - t0
    times, loss = [], float("nan")
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        sync(device)
        times.append(time.perf_counter() - t0)
    sec = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    row = {"method": method, "mode": mode, "variant": variant, "batch": b, "s_per_step": sec,
           "images_per_s": b / sec, "peak_gib": peak, "model_tflop_per_step": flops / 1e12,
           "tflop_per_s": flops / 1e12 / sec, "warmup_s": warm, "loss": loss}
    if args.peak_tflops:
        row["mfu"] = row["tflop_per_s"] / args.peak_tflops
    return row


def available_parts_names(batch: dict[str, Any]) -> set[str]:
    """The store parts a stored batch carries (``stored/latents/target`` -> ``latents``)."""
    return {k[len(STORED_PREFIX):].split("/")[0] for k in batch if k.startswith(STORED_PREFIX)}


def peak_of(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def table(rows: list[dict[str, Any]], device_name: str, peak: float | None, preset: str = "paper") -> str:
    lines = [f"{preset} training steps on {device_name} (bf16 autocast, fused AdamW, every condition kept; "
             f"peak {peak or 'unknown'} TFLOP/s dense bf16)",
             f"  {'method':9s} {'mode':6s} {'variant':30s} {'batch':>5s} {'s/step':>8s} {'img/s':>7s} "
             f"{'peak GiB':>8s} {'TFLOP/step':>10s} {'TFLOP/s':>8s} {'MFU':>6s}"]
    for r in rows:
        if "error" in r:
            lines.append(f"  {r['method']:9s} {r['mode']:6s} {r['variant']:30s} {r['batch']:>5d}  {r['error']}")
            continue
        peak_gib = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a"
        lines.append(f"  {r['method']:9s} {r['mode']:6s} {r['variant']:30s} {r['batch']:>5d} {r['s_per_step']:8.3f} "
                     f"{r['images_per_s']:7.1f} {peak_gib:>8s} {r['model_tflop_per_step']:10.2f} "
                     f"{r['tflop_per_s']:8.1f} {mfu:>6s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["fpdm", "truepose"], choices=["fpdm", "truepose"])
    ap.add_argument("--modes", nargs="+", default=["online", "store"], choices=["online", "store"])
    ap.add_argument("--variants", nargs="+", default=["base", "channels_last", "channels_last+compile"],
                    help="each a +-joined set of base, channels_last, frozen_bf16, compile, ckpt, bN")
    ap.add_argument("--batch", type=int, default=4, help="micro-batch per step (a bN option overrides it)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, kernels, compile)")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu (wiring check only)")
    ap.add_argument("--tiny", action="store_true", help="the tiny presets (experiments/tiny) instead of the paper's")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="image size instead of the YAML's (wiring checks; encoder views keep the YAML's sizes)")
    ap.add_argument("--unet-preset", default=None,
                    help="replace the UNets by this preset (e.g. cpu-small: the paper's frozen networks on a CPU)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print("bench_paper_step_gpu: skipped, no CUDA device (--device cpu --tiny checks the wiring)")
        return []
    device = torch.device(args.device or "cuda")
    warnings.filterwarnings("ignore")
    torch.backends.cuda.matmul.allow_tf32 = True
    args.peak_tflops = peak_of(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows = []
    for method in args.methods:
        for mode in args.modes:
            for variant in args.variants:
                try:
                    rows.append(run_variant(method, "tiny" if args.tiny else "paper", mode, variant, args, device))
                except torch.OutOfMemoryError:
                    rows.append({"method": method, "mode": mode, "variant": variant,
                                 "batch": micro_batch(set(variant.split("+")), args.batch), "error": "out of memory"})
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                print(table(rows[-1:], name, args.peak_tflops).splitlines()[-1], flush=True)
                if args.json:  # after every row: a run stopped by its time limit keeps what it measured
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps({"device": name, "peak_tflops": args.peak_tflops, "rows": rows},
                                                    indent=1))
    print(table(rows, name, args.peak_tflops, "tiny" if args.tiny else "paper"))
    return rows


if __name__ == "__main__":
    main()
