"""FLOP budget of the FPDM and TruePose paper presets per training step and per sample, on the meta device.

What it counts (``torch.utils.flop_counter.FlopCounterMode``; matmuls and convolutions, 2 FLOPs per
multiply-add, forward and backward), at 512x352, batch 1, with the models that
experiments/deepfashion/{fpdm,truepose}.yaml build (the IPF fusion model from ipf.yaml) and no weights:
every pretrained id is replaced by the same architecture with random weights (benchmarks/_paper_models.py)
and everything is built under ``torch.device("meta")``, so nothing is allocated or computed and the whole
benchmark takes seconds on a CPU.

* **Training step, online**: ``LatentDiffusion.diffusion_loss`` + ``backward()``, every condition kept
  (the most expensive case; dropout only skips TruePose's source side for dropped rows). Every frozen
  part runs: FPDM's SD VAE encode of the target, DINOv2-L on the source, the IPF model (CLIP ViT-L/14 on
  source and target pose + Combiner); TruePose's VAE encodes of source and target and its frozen CLIP on
  the source and on CAA's region crops.
* **Training step, from the store**: the same call on the batch the feature store serves (``pgpis data
  cache``, docs/feature-store.md: the ``stored/...`` keys, so the denoiser takes its real store path and
  skips the networks whose outputs the batch carries); the trainable parts (pose encoders, projections,
  UNets, SourceNet, HPFA/CAA) still run forward and backward. ``store_ratio`` counts the parts that store
  holds, every frozen part for both (FPDM: latents, DINOv2 tokens, fusion embedding; TruePose: the latents
  and its frozen CLIP's global and CAA region embeddings); TruePose's ``store_latents_only_ratio`` stores
  the latents alone (a trainable CLIP, as in the tiny preset, cannot be stored).
* **Ratios** to the bare UNet step: FPDM, the SD-2.1 UNet's forward + backward on the same shapes
  (64x44 latent, 1297 cross-attention tokens, the class embedding) with nothing else; TruePose, defined as
  its two SD-1.5 UNets' forward + backward (TargetNet and SourceNet as plain diffusers UNets on one
  768-d CLIP token).
* **Sampling**, per sample at the paper settings (FPDM 50 DDIM steps, cumulative CFG = 3 branches; TruePose
  35 steps, CFG = 2 branches): pgpis' ``LatentDiffusion.generate`` (conditions encoded once per sample,
  SourceNet included; one batched call over the branches per step; one VAE decode), counted on the real
  sampler, against the naive loop of benchmarks/bench_sampling.py (every encoder re-run in every branch of
  every step). Both run for real at one step and are extrapolated to the paper's steps (every step costs the same).

Model FLOPs exclude gradient checkpointing's recomputation (the TruePose YAML turns it on; the
``--recompute`` line counts it as the hardware does). DINOv2 reads the YAML's 512x512 (the stride-14 patch
convolution gives 36x36 = 1296 patches + CLS, as at 504). One departure from the YAML, printed: TruePose's CAA crops ``--regions`` parsing classes per source (default 10: hair, face, upper clothes,
pants, 2 arms, 2 legs, 2 shoes of a typical DeepFashion LIP map).

``--json`` prints one JSON object, nested by model: ``{"fpdm": {"online_ratio": ..., "store_ratio": ...,
"sampling_speedup": ..., "tflop": {component: TFLOP}, ...}, "truepose": {...}, "settings": {...}}`` (the
issue's ``fpdm.online_ratio`` is ``obj["fpdm"]["online_ratio"]``). ``--size``, ``--dino`` and ``--regions``
shrink the problem (tests/test_paper_flops.py); the defaults are the paper's.

    .venv/bin/python benchmarks/bench_paper_flops.py [--json] [--recompute]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from _paper_models import meta_paper_model  # noqa: E402
from pgpis.diffusion.denoiser import STORED_PREFIX  # noqa: E402
from pgpis.diffusion.sampler import per_sample_generators, per_sample_noise  # noqa: E402

META = torch.device("meta")
FPDM_YAML, IPF_YAML, TRUEPOSE_YAML = ("experiments/deepfashion/fpdm.yaml", "experiments/deepfashion/ipf.yaml",
                                      "experiments/deepfashion/truepose.yaml")
T = 1e12


def flops(fn: Callable[[], Any]) -> int:
    """FLOPs of `fn()` (forward and any backward it runs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def fwd_bwd(module: nn.Module, *inputs: Tensor, **kwargs: Any) -> int:
    """Forward + backward of a trainable module alone (inputs without gradients, loss = sum of the output)."""
    def run() -> None:
        out = module(*inputs, **kwargs)
        out = getattr(out, "sample", out)
        out.float().sum().backward()
    return flops(run)


def pixels(b: int, h: int, w: int) -> Tensor:
    return torch.zeros(b, 3, h, w, device=META)


@torch.no_grad()
def naive_sample(model, batch: dict, guidance, steps: int) -> Tensor:
    """benchmarks/bench_sampling.py's naive loop on the batch's device: every encoder in every branch of every step."""
    sched = model.sampler.make_scheduler(model.noise_scheduler.config)
    b, device = len(batch["target"]), batch["target"].device
    lat = per_sample_noise(per_sample_generators(model.sample_seeds(batch)), model.latent_shape(batch), device,
                           torch.float32)
    groups = model.denoiser.condition_groups
    for t in sched.timesteps:
        outs = []
        for branch in guidance.branches:
            kept = guidance.kept_groups(branch, groups)
            keep = {g: torch.full((b,), g in kept) for g in groups}
            outs.append(model.denoiser(lat, t.to(device).expand(b), model.denoiser.encode_conditions(batch), keep))
        lat = sched.step(sum(c * o for c, o in zip(guidance.coefficients, outs)), t, lat).prev_sample
    return model.first_stage.decode(lat)


def sampling(model, batch: dict, steps: int) -> dict[str, float]:
    """pgpis' generate vs the naive loop, FLOPs per sample at `steps` DDIM steps.

    Both loops run for real at one step; a step costs the same at every timestep, so the count at `steps`
    is the one-step count plus ``steps - 1`` times its per-step part (the one-step count less what runs
    once per sample: pgpis' ``encode_conditions`` and the VAE decode; the naive loop's decode).
    """
    model.eval()
    guidance = model.guidance
    with torch.no_grad():
        latents = torch.zeros(1, *model.latent_shape(batch), device=batch["target"].device)
        encode = flops(lambda: model.denoiser.encode_conditions(batch))
        decode = flops(lambda: model.first_stage.decode(latents))
    model.sampler.num_inference_steps = 1
    ours_1 = flops(lambda: model.generate(batch, guidance=guidance))
    naive_1 = flops(lambda: naive_sample(model, batch, guidance, 1))
    model.sampler.num_inference_steps = steps
    ours = ours_1 + (steps - 1) * (ours_1 - encode - decode)
    naive = naive_1 + (steps - 1) * (naive_1 - decode)
    return {"steps": steps, "branches": guidance.num_branches, "pgpis_tflop": ours / T, "naive_tflop": naive / T,
            "sampling_speedup": naive / ours, "vae_decode_tflop": decode / T, "encode_conditions_tflop": encode / T}


# ---------------------------------------------------------------------------------------------------- FPDM

def fpdm(h: int, w: int, dino: int) -> dict[str, Any]:
    overrides = {"source_encoder": {"preset": "large", "name_or_path": None, "size": [dino, dino]}}
    model = meta_paper_model(FPDM_YAML, IPF_YAML, overrides)
    den = model.denoiser
    batch = {"target": pixels(1, h, w), "target_pose": pixels(1, h, w), "source": pixels(1, h, w),
             "dino_source": pixels(1, dino, dino), "clip_source": pixels(1, 224, 224),
             "clip_target_pose": pixels(1, 224, 224)}
    keep = den.all_kept(1, "cpu")  # the keep-mask on the CPU: meta tensors have no values to branch on

    def step() -> None:
        model.diffusion_loss(batch, keep=keep).backward()

    with torch.no_grad():
        latents = model.first_stage.encode(batch["target"])
        tokens = den.source_encoder(batch["dino_source"])
        embedding = den.fusion_encoder(batch["clip_source"], batch["clip_target_pose"])
    frozen = {
        "vae_encode_target": flops(lambda: model.first_stage.encode(batch["target"])),
        "dinov2_source": flops(lambda: den.source_encoder(batch["dino_source"])),
        "ipf_clip_source_pose": flops(lambda: den.fusion_encoder(batch["clip_source"], batch["clip_target_pose"])),
    }
    model.train()
    online = flops(step)
    sample = sampling(model, batch, 50)
    model.train()
    cross = den.source_projection(tokens.detach())
    bare_unet = fwd_bwd(den.unet, torch.empty_like(latents), torch.zeros(1, dtype=torch.long, device=META),
                        encoder_hidden_states=torch.empty_like(cross).detach(),
                        class_labels=torch.zeros(1, den.fusion_adapter.net[-1].out_features, device=META))
    trainable = {
        "pose_encoder": fwd_bwd(den.pose_encoder, batch["target_pose"]),
        "source_projection": fwd_bwd(den.source_projection, tokens),
        "fusion_mlp": fwd_bwd(den.fusion_adapter, embedding.float()),
    }
    # the batch a feature store serves (pgpis.store: STORED_PREFIX keys); the denoiser skips what it carries
    stored_batch = {**batch, STORED_PREFIX + "latents/target": latents, STORED_PREFIX + "dino": tokens,
                    STORED_PREFIX + "fusion": embedding}
    from_store = flops(lambda: model.diffusion_loss(stored_batch, keep=keep).backward())
    trainable["unet_fwd_bwd_with_input_grads"] = from_store - sum(trainable.values())
    return {
        "tflop": {**{k: v / T for k, v in frozen.items()}, **{k: v / T for k, v in trainable.items()},
                  "bare_unet_fwd_bwd": bare_unet / T, "step_online": online / T, "step_store": from_store / T,
                  "step_store_all_frozen": from_store / T},
        "frozen": sorted(frozen), "stored": sorted(frozen), "online_ratio": online / bare_unet,
        "store_ratio": from_store / bare_unet, "store_all_frozen_ratio": from_store / bare_unet,
        "frozen_share_online": sum(frozen.values()) / online, **sample,
        "bare_unet": "the SD-2.1 UNet's forward + backward on the step's shapes",
        "store_parts": "latents, dino, fusion (pgpis data cache): every frozen part",
    }


# ---------------------------------------------------------------------------------------------------- TruePose

def _meta_parsing_side(den, regions: int) -> None:
    """Replace TruePose's two data-dependent helpers by shape-faithful ones (meta tensors have no values).

    ``target_mask`` reads the keypoints on the CPU (no FLOPs); ``region_embeddings`` crops every parsing
    class present and runs the frozen CLIP on the crops: here on `regions` crops per source.
    """
    num_classes = den.label_set.num_classes

    def target_mask(parsing: Tensor, keypoints: Tensor) -> Tensor:
        return torch.ones(parsing.shape, dtype=torch.bool, device=parsing.device)

    def region_embeddings(source: Tensor, parsing: Tensor) -> tuple[Tensor, Tensor]:
        b = source.shape[0]
        crops = source.new_zeros(b * regions, 3, *den.clip.input_size)
        emb = den.clip(crops).float().reshape(b, regions, -1)
        emb = torch.cat([emb, emb.new_zeros(b, num_classes - regions, emb.shape[-1])], dim=1)
        present = torch.zeros(b, num_classes, dtype=torch.bool, device=source.device)
        return emb, present

    den.target_mask = target_mask
    den.region_embeddings = region_embeddings


def truepose(h: int, w: int, regions: int, recompute: bool) -> dict[str, Any]:
    from diffusers import UNet2DConditionModel

    model = meta_paper_model(TRUEPOSE_YAML)
    den = model.denoiser
    _meta_parsing_side(den, regions)
    checkpointing = den.target_net.is_gradient_checkpointing
    for net in (den.target_net, den.source_net):
        net.disable_gradient_checkpointing()  # model FLOPs: no recomputation
    batch = {"source": pixels(1, h, w), "target": pixels(1, h, w), "target_pose": pixels(1, h, w),
             "source_parsing": torch.zeros(1, h, w, dtype=torch.long, device=META),
             "target_keypoints": torch.zeros(1, 18, 2, device=META)}
    keep = den.all_kept(1, "cpu")

    def step() -> None:
        model.diffusion_loss(batch, keep=keep).backward()

    with torch.no_grad():
        latents = model.first_stage.encode(batch["target"])
        clip_global = den.clip(batch["source"])
        crops = pixels(regions, *den.clip.input_size)
    frozen = {
        "vae_encode_target": flops(lambda: model.first_stage.encode(batch["target"])),
        "vae_encode_source": flops(lambda: model.first_stage.encode(batch["source"])),
        "clip_source": flops(lambda: den.clip(batch["source"])),
        f"clip_caa_regions_x{regions}": flops(lambda: den.clip(crops)),
    }
    model.train()
    online = flops(step)
    recomputed = None
    if recompute and checkpointing:
        for net in (den.target_net, den.source_net):
            net.enable_gradient_checkpointing()
        recomputed = flops(step)
        for net in (den.target_net, den.source_net):
            net.disable_gradient_checkpointing()
    sample = sampling(model, batch, 35)
    model.train()
    with torch.device(META):
        plain = UNet2DConditionModel(**{k: v for k, v in den.target_net.config.items() if not k.startswith("_")})
    one_token = torch.zeros(1, 1, int(plain.config.cross_attention_dim), device=META)
    bare_unets = 2 * fwd_bwd(plain, torch.empty_like(latents), torch.zeros(1, dtype=torch.long, device=META),
                             encoder_hidden_states=one_token)
    trainable = {"pose_encoder": fwd_bwd(den.pose_encoder, batch["target_pose"])}
    # what `pgpis data cache` stores for TruePose, served as a store serves it: both latents, then also the
    # frozen CLIP's global and per-class region embeddings (the `clip` part, [1 + R, D] per source view)
    latents_batch = {**batch, STORED_PREFIX + "latents/target": latents, STORED_PREFIX + "latents/source": latents}
    clip_rows = torch.zeros(1, 1 + den.label_set.num_classes, clip_global.shape[-1], device=META)
    stored_batch = {**latents_batch, STORED_PREFIX + "clip": clip_rows}
    latents_stored = flops(lambda: model.diffusion_loss(latents_batch, keep=keep).backward())
    from_store = flops(lambda: model.diffusion_loss(stored_batch, keep=keep).backward())
    trainable["target_net_source_net_hpfa_caa_fwd_bwd"] = from_store - sum(trainable.values())
    out = {
        "tflop": {**{k: v / T for k, v in frozen.items()}, **{k: v / T for k, v in trainable.items()},
                  "bare_two_unets_fwd_bwd": bare_unets / T, "step_online": online / T,
                  "step_store_latents_only": latents_stored / T, "step_store": from_store / T,
                  "step_store_all_frozen": from_store / T},
        "frozen": sorted(frozen), "stored": sorted(frozen),
        "online_ratio": online / bare_unets, "store_ratio": from_store / bare_unets,
        "store_latents_only_ratio": latents_stored / bare_unets, "store_all_frozen_ratio": from_store / bare_unets,
        "frozen_share_online": sum(frozen.values()) / online, **sample,
        "bare_unet": "two plain SD-1.5 UNets' forward + backward (TargetNet and SourceNet) on the step's shapes",
        "store_parts": "latents, clip (pgpis data cache): every frozen part",
        "regions": regions,
    }
    if recomputed is not None:
        out["tflop"]["step_online_with_checkpointing"] = recomputed / T
    return out


# ---------------------------------------------------------------------------------------------------- report

def table(results: dict[str, Any]) -> str:
    lines = []
    for name in ("fpdm", "truepose"):
        r = results[name]
        lines.append(f"{name.upper()}  (TFLOP per image; * frozen, s: also in pgpis' feature store)")
        lines.append(f"  {'part':44s} {'TFLOP':>8s}")
        for part, v in r["tflop"].items():
            mark = ("s" if part in r["stored"] else "*") if part in r["frozen"] else " "
            lines.append(f"  {mark} {part:42s} {v:8.3f}")
        lines.append(f"  ratio to the bare step ({r['bare_unet']}):")
        lines.append(f"    online {r['online_ratio']:.2f}x   from the store {r['store_ratio']:.2f}x "
                     f"({r['store_parts']})")
        only = (f"   latents alone {r['store_latents_only_ratio']:.2f}x (a trainable CLIP)"
                if "store_latents_only_ratio" in r else "")
        lines.append(f"    frozen share of the online step {100 * r['frozen_share_online']:.0f}%{only}")
        lines.append(f"  sampling, {r['steps']} DDIM steps x {r['branches']} branches: naive {r['naive_tflop']:.1f} "
                     f"TFLOP, pgpis {r['pgpis_tflop']:.1f} TFLOP per sample -> {r['sampling_speedup']:.2f}x")
    s = results["settings"]
    lines.append(f"settings: {s['size'][0]}x{s['size'][1]} batch 1, DINOv2 input {s['dino']}x{s['dino']}, "
                 f"{s['regions']} CAA crops, counted on the meta device in {s['seconds']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 352), metavar=("H", "W"), help="image size (paper)")
    ap.add_argument("--dino", type=int, default=512, help="DINOv2 input side (512 in the paper -> 36x36 patches)")
    ap.add_argument("--regions", type=int, default=10, help="TruePose CAA region crops per source")
    ap.add_argument("--recompute", action="store_true", help="also count TruePose with gradient checkpointing")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    h, w = args.size
    results = {"fpdm": fpdm(h, w, args.dino), "truepose": truepose(h, w, args.regions, args.recompute)}
    results["settings"] = {"size": [h, w], "batch": 1, "dino": args.dino, "regions": args.regions,
                           "seconds": time.perf_counter() - t0, "counter": "torch.utils.flop_counter.FlopCounterMode",
                           "unit": "TFLOP = 1e12 FLOPs, 2 per multiply-add"}
    print(json.dumps(results, indent=1) if args.json else table(results))
    return results


if __name__ == "__main__":
    main()
