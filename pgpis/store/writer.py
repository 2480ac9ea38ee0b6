"""The cache job: run the frozen encoders once over every training view and write a LitData store.

Layout of a store::

    <store>/manifest.json                   written last (parts, identities, data, shards and their keys)
    <store>/weights/<part>.safetensors      the frozen encoder the part was computed with (lazy rebuilds)
    <store>/<part>/shard-<rank>-<seg>/      one ``litdata.optimize`` output each (index.json + chunk-*.bin)
    <store>/.ranks/rank-<rank>.json         each rank's share, merged into the manifest by the last rank done

Sharding: process ``rank`` of ``world`` (``RANK``/``WORLD_SIZE`` from torchrun or Lightning, ``SLURM_PROCID``/
``SLURM_NTASKS`` under srun) encodes keys ``rank::world`` of every part on its own device and writes its own
shards; no process waits for another until the manifest merge. Within a rank the encoders run in the main
process (on its GPU); ``litdata.optimize`` serialises the rows into chunks in one forked writer process per
segment (``num_workers=1``, so the rows keep their order and the keys listed in the manifest index them).
LitData's own ``num_workers`` parallelises *its* ``fn`` over CPU processes; the encoders here would then be
copied into every worker, so parallelism comes from ranks, one per GPU, instead.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.utils.data import DataLoader

from pgpis.store.errors import StoreError
from pgpis.store.manifest import DTYPES, Manifest, PartRecord, files_digest  # noqa: F401
from pgpis.store.parts import PartSpec, check_enumerable, enumerate_keys, view_dataset

SEGMENT_BYTES = 2 << 30  # rows held in memory before a litdata.optimize call writes them (per rank)
CHUNK_BYTES = "64MB"


def dist_env() -> tuple[int, int]:
    """(rank, world size) of this cache process, as training would see it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ and world_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[world_var])
    return 0, 1


def run_id() -> str | None:
    """The launcher's job id (torchrun, SLURM), so shares of different cache jobs are never merged."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("SLURM_JOB_ID")


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def to_stored(rows: torch.Tensor, dtype: str) -> torch.Tensor:
    """Rows in the stored dtype, as LitData can serialise them (bf16 as its int16 bit pattern)."""
    t = rows.to(DTYPES[dtype]).contiguous()
    return t.view(torch.int16) if dtype == "bf16" else t


def from_stored(t: torch.Tensor, dtype: str) -> torch.Tensor:
    """Inverse of :func:`to_stored`, as float32."""
    return (t.view(torch.bfloat16) if dtype == "bf16" else t).float()


def data_record(datamodule: Any, dataset: Any) -> dict[str, Any]:
    """What the stored tensors depend on in the data: the image files (names, sizes), sizes, views, pairs."""
    import hashlib

    hp = datamodule.hparams
    names = sorted({n for pair in dataset.pairs for n in pair})
    index = dataset.index
    sizes = {n: os.path.getsize(index.image_path(n)) for n in names}
    pairs = "\n".join(f"{s}\t{t}" for s, t in dataset.pairs)
    aug = dataset.augmentation
    return {"datamodule": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}",
            "root": str(hp.get("root")), "image_size": list(hp.get("image_size")),
            "encoder_inputs": {k: list(v) for k, v in (hp.get("encoder_inputs") or {}).items()},
            "flip_prob": float(aug.flip_prob), "identity_pairs": bool(aug.identity_pair_prob > 0),
            "keypoint_jitter": float(aug.keypoint_jitter), "val_identities": hp.get("val_identities"),
            "split_seed": hp.get("seed"), "train_pairs": len(dataset.pairs),
            "pairs_digest": hashlib.sha256(pairs.encode()).hexdigest(), "images": sizes}


def _loader(dataset: Any, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _encode_keys(spec: PartSpec, dataset: Any, keys: list, batch_size: int, num_workers: int,
                 device: torch.device) -> Any:
    """Yield output rows [n, ...] (float32, CPU) for `keys` in order, loading each view through the dataset."""
    by_flip: dict[bool, list] = {}
    for key, pair, flip in keys:
        by_flip.setdefault(flip, []).append(pair)
    for flip, pairs in by_flip.items():  # keys are grouped by flip in enumerate_keys, so order is kept
        for batch in _loader(view_dataset(dataset, pairs, flip), batch_size, num_workers):
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            yield spec.encode(batch).float().cpu()


def _write_segment(rows: list[torch.Tensor], keys: list[str], out: Path) -> None:
    import litdata

    out.parent.mkdir(parents=True, exist_ok=True)
    items = list(zip(keys, rows))
    litdata.optimize(lambda i: {"key": items[i][0], "value": items[i][1]}, list(range(len(items))), str(out),
                     chunk_bytes=CHUNK_BYTES, num_workers=1, reorder_files=False, keep_data_ordered=True,
                     start_method="fork", verbose=False, mode="overwrite")


def plan(parts: Mapping[str, PartSpec], dataset: Any, dtypes: Mapping[str, str], device: torch.device,
         log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Keys and per-key shape of every part, and the disk size they will take (printed before writing)."""
    out: dict[str, dict[str, Any]] = {}
    log(f"{'part':<9} {'views':>9} {'shape per view':<20} {'dtype':<5} {'per view':>10} {'total':>10}")
    for name, spec in parts.items():
        keys = enumerate_keys(dataset, spec.unit)
        probe = next(_encode_keys(spec, dataset, keys[:1], 1, 0, device))
        shape = list(probe.shape[1:])
        per = math.prod(shape) * DTYPES[dtypes[name]].itemsize
        out[name] = {"keys": keys, "shape": shape, "bytes": per * len(keys)}
        log(f"{name:<9} {len(keys):>9} {str(shape):<20} {dtypes[name]:<5} {human(per):>10} {human(per * len(keys)):>10}")
    log(f"{'all':<9} {'':>9} {'':<20} {'':<5} {'':>10} {human(sum(p['bytes'] for p in out.values())):>10}")
    return out


def write_store(model: torch.nn.Module, datamodule: Any, out: str | Path, parts: Mapping[str, PartSpec],
                dtypes: Mapping[str, str], *, batch_size: int = 64, num_workers: int = 0,
                device: str | torch.device = "cpu", rank: int | None = None, world: int | None = None,
                segment_bytes: int = SEGMENT_BYTES, log: Callable[[str], None] = print) -> Manifest | None:
    """Write this rank's share of `parts` to `out`; returns the manifest when this rank completed the store."""
    if rank is None or world is None:
        rank, world = dist_env()
    out, device = Path(out), torch.device(device)
    # a store being (re)written is no store: training refuses it until the last rank writes the new manifest
    (out / "manifest.json").unlink(missing_ok=True)
    (out / ".ranks" / f"rank-{rank}.json").unlink(missing_ok=True)
    datamodule.setup("fit")
    dataset = datamodule.dataset("train")
    check_enumerable(dataset, parts)
    model.to(device).eval()
    say = log if rank == 0 else (lambda _m: None)
    say(f"pgpis data cache: {len(parts)} part(s) over {len(dataset.pairs)} training pairs, {world} process(es)")
    layout = plan(parts, dataset, dtypes, device, say)
    shards: dict[str, list[dict[str, Any]]] = {}
    rounding: dict[str, dict[str, float]] = {}
    for name, spec in parts.items():
        t0 = time.time()
        mine = layout[name]["keys"][rank::world]
        per_row = max(1, layout[name]["bytes"] // max(1, len(layout[name]["keys"])))
        seg_rows = max(1, segment_bytes // per_row)
        rows, keys, seg, errs = [], [], 0, {"max_abs": 0.0, "sum_abs": 0.0, "sum_ref": 0.0, "n": 0}
        shards[name] = []

        def flush() -> None:
            nonlocal rows, keys, seg
            if not keys:
                return
            rel = f"{name}/shard-{rank:03d}-{seg:03d}"
            _write_segment(rows, keys, out / rel)
            shards[name].append({"dir": rel, "keys": keys})
            rows, keys, seg = [], [], seg + 1

        done = 0
        for batch_rows in _encode_keys(spec, dataset, mine, batch_size, num_workers, device):
            stored = to_stored(batch_rows, dtypes[name])
            if dtypes[name] != "fp32":  # the reduced precision's effect, measured on every row written
                diff = (from_stored(stored, dtypes[name]) - batch_rows).abs()
                errs["max_abs"] = max(errs["max_abs"], float(diff.max()))
                errs["sum_abs"] += float(diff.sum()); errs["sum_ref"] += float(batch_rows.abs().sum())
                errs["n"] += diff.numel()
            for i in range(stored.shape[0]):
                rows.append(stored[i].clone())
                keys.append(mine[done + i][0])
            done += stored.shape[0]
            if len(keys) >= seg_rows:
                flush()
        flush()
        if errs["n"]:
            rounding[name] = {"max_abs": errs["max_abs"], "mean_abs": errs["sum_abs"] / errs["n"],
                              "mean_rel": errs["sum_abs"] / max(errs["sum_ref"], 1e-30)}
            log(f"rank {rank}: {name} in {dtypes[name]}: max |stored - fp32| {errs['max_abs']:.3g}, mean "
                f"{rounding[name]['mean_abs']:.3g} (relative {rounding[name]['mean_rel']:.2g})")
        log(f"rank {rank}: {name}: {done} views in {time.time() - t0:.1f} s")
    if rank == 0:
        _save_weights(out, parts)
    records = {name: {"name": name, "unit": spec.unit, "dtype": dtypes[name], "shape": layout[name]["shape"],
                      "config": spec.config, "weights_digest": spec.weights_digest,
                      "files_digest": spec.files_digest,
                      "weights_file": f"weights/{name}.safetensors" if spec.save_weights else None,
                      "shards": shards[name], "rounding": rounding.get(name)}
               for name, spec in parts.items()}
    share = {"rank": rank, "world": world, "run": run_id(), "parts": records, "data": data_record(datamodule, dataset)}
    ranks = out / ".ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    tmp = ranks / f".rank-{rank}.json.tmp"
    tmp.write_text(json.dumps(share))
    tmp.replace(ranks / f"rank-{rank}.json")
    return merge(out, world)


def merge(out: Path, world: int) -> Manifest | None:
    """The manifest from every rank's share, once all `world` shares are there (None before that)."""
    files = [out / ".ranks" / f"rank-{r}.json" for r in range(world)]
    if not all(f.is_file() for f in files):
        return None
    shares = [json.loads(f.read_text()) for f in files]
    first = shares[0]
    if len({s.get("run") for s in shares}) > 1:  # a share left by an earlier job: its rank has not re-run yet
        return None
    parts: dict[str, PartRecord] = {}
    for name, rec in first["parts"].items():
        merged = dict(rec)
        merged.pop("rounding", None)
        merged["shards"] = [s for share in shares for s in share["parts"][name]["shards"]]
        parts[name] = PartRecord(**merged)
        for share in shares[1:]:
            other = share["parts"][name]
            if other["weights_digest"] != rec["weights_digest"] or other["config"] != rec["config"]:
                raise StoreError(f"rank {share['rank']} encoded {name} with other weights or config than rank 0; "
                                 "every process must run the same experiment config")
    manifest = Manifest(parts=parts, data=first["data"], world_size=world)
    manifest.data["rounding"] = {n: s["parts"][n].get("rounding") for s in shares[:1] for n in s["parts"]}
    manifest.write(out)
    return manifest


def _save_weights(out: Path, parts: Mapping[str, PartSpec]) -> None:
    from safetensors.torch import save_file

    (out / "weights").mkdir(parents=True, exist_ok=True)
    for name, spec in parts.items():
        if spec.save_weights and spec.module is not None:
            state = {k: v.detach().cpu().clone().contiguous() for k, v in spec.module.state_dict().items()}
            save_file(state, str(out / "weights" / f"{name}.safetensors"))
