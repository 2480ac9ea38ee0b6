"""`pgpis data cache`: write a feature store for an experiment (docs/feature-store.md).

    pgpis data cache --config EXPERIMENT.yaml [--config MORE.yaml] [--parts latents,dino,fusion | latents,clip]
                     [--dtype bf16 | --dtype dino=bf16,latents=fp32] --out DIR [--key value ...]

Everything after the known options is handed to the experiment's LightningCLI parser (e.g.
``--data.init_args.root /data/deepfashion``), so the encoders and data are exactly those `pgpis fit` builds
from the same arguments. Run it once per process under torchrun/srun to shard the work (docs).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from pgpis.store.errors import StoreError
from pgpis.store.manifest import DTYPES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgpis data cache", allow_abbrev=False,
                                description="Run an experiment's frozen encoders once over every training view and "
                                            "write a LitData feature store that `pgpis fit --store DIR` trains from.")
    p.add_argument("--config", action="append", required=True, help="experiment YAML (repeat to compose, as for fit)")
    p.add_argument("--out", required=True, type=Path, help="the store folder")
    p.add_argument("--parts", default=None,
                   help="comma-separated parts (default: every frozen part the model has: latents,dino,fusion for FPDM, "
                        "latents,clip for TruePose)")
    p.add_argument("--dtype", default="fp32",
                   help="stored precision: one of fp32|fp16|bf16 for every part, or per part, e.g. dino=bf16,latents=fp32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers that decode the images")
    p.add_argument("--device", default=None,
                   help="default: cuda:<LOCAL_RANK or SLURM_LOCALID> when a GPU is there, else cpu")
    p.add_argument("--dry-run", action="store_true", help="print the sizes and stop")
    return p


def parse_dtypes(spec: str, parts: Sequence[str]) -> dict[str, str]:
    """'bf16' or 'dino=bf16,latents=fp32' -> {part: dtype} (unnamed parts fp32)."""
    def check(d: str) -> str:
        if d not in DTYPES:
            raise StoreError(f"--dtype {spec}: '{d}' is not one of {', '.join(DTYPES)}")
        return d

    if "=" not in spec:
        return {p: check(spec) for p in parts}
    out = {p: "fp32" for p in parts}
    for item in spec.split(","):
        name, _, d = item.partition("=")
        if name not in out:
            raise StoreError(f"--dtype {spec}: '{name}' is not one of the parts written ({', '.join(parts)})")
        out[name] = check(d)
    return out


def _device(given: Optional[str]) -> str:
    import os

    if given:
        return given
    local = os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))  # torchrun / srun
    return f"cuda:{int(local)}" if torch.cuda.is_available() else "cpu"


def build_run(args: Sequence[str]) -> Any:
    """The LightningCLI of `pgpis fit` with these arguments, instantiated but not run (model, datamodule, trainer
    exactly as training builds them: same config parsing, same seed)."""
    from pgpis.commands.lightning import run_lightning_cli

    return run_lightning_cli(list(args), run=False)


def main(argv: Sequence[str] | None = None) -> int:
    from pgpis.store.parts import select_parts
    from pgpis.store.writer import write_store

    args, rest = _parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    cli_args = [a for c in args.config for a in ("--config", c)] + list(rest)
    cli = build_run(cli_args + ["--trainer.logger", "false"])
    if cli.config.get("store"):
        raise StoreError("pgpis data cache: the config sets `store`; write a store from the online model (drop it)")
    names = [n.strip() for n in args.parts.split(",")] if args.parts else None
    parts = select_parts(cli.model, names)
    dtypes = parse_dtypes(args.dtype, list(parts))
    if args.dry_run:
        from pgpis.store.parts import check_enumerable
        from pgpis.store.writer import plan

        cli.datamodule.setup("fit")
        dataset = cli.datamodule.dataset("train")
        check_enumerable(dataset, parts)
        plan(parts, dataset, dtypes, torch.device(_device(args.device)), print)
        return 0
    manifest = write_store(cli.model, cli.datamodule, args.out, parts, dtypes, batch_size=args.batch_size,
                           num_workers=args.workers, device=_device(args.device))
    if manifest is not None:
        print(f"wrote {args.out} ({', '.join(f'{n}: {r.count} views' for n, r in manifest.parts.items())}); train "
              f"with: pgpis fit --config ... --store {args.out}")
    else:
        print(f"wrote this process's share of {args.out}; the last process to finish writes the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
