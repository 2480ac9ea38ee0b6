"""Evaluation under DDP (2 CPU processes, gloo) gives exactly the single-process numbers."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.data.deepfashion.evaluate import evaluate_deepfashion
from pgpis.metrics.fid import CleanFidExtractor
from pgpis.metrics.lpips_net import build_lpips
from pgpis.metrics.pairs import copy_source
from pgpis.metrics.protocols import get_protocol
from pgpis.metrics.states import IndexedValues, my_batches

# the DeepFashion protocol at a small report size keeps four evaluations cheap on a shared CPU
PROTOCOL = dataclasses.replace(get_protocol("deepfashion-256x176"), name="ddp-test-96x64", size=(96, 64))
BATCH = 5  # 24 test pairs -> 5 batches: rank 0 gets 3, rank 1 gets 2 (uneven on purpose)


class TinyFeatures(torch.nn.Module):
    """Deterministic small network with clean-fid's custom feature-extractor contract."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 9, stride=8)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.05)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x / 255.0)).mean(dim=(2, 3))


def _evaluate(root: str, generated: str, cache: str | None) -> dict:
    torch.manual_seed(0)  # same random LPIPS backbone in every process
    net = build_lpips(random_backbone=True)
    ext = CleanFidExtractor(TinyFeatures().eval(), name="tiny-ddp", dim=4)
    res = evaluate_deepfashion(root, "test", generated, PROTOCOL, batch_size=BATCH, lpips_net=net,
                               fid_extractor=ext, fid_cache_dir=cache)
    return res.to_dict()


def _worker(rank: int, world: int, init_file: str, root: str, generated: str, cache: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        local = IndexedValues(["x"])
        for batch in my_batches(7, 2):  # 4 batches over 2 ranks
            local.update(torch.tensor(list(batch)), x=torch.tensor([float(i) for i in batch]))
        gathered = local.compute()
        lonely = IndexedValues(["x"], vector_dims={"f": 3})  # one batch for two ranks: rank 1 has no work
        for batch in my_batches(2, 4):
            lonely.update(torch.tensor(list(batch)), x=torch.ones(len(batch)), f=torch.ones(len(batch), 3))
        if not my_batches(2, 4):
            lonely.update_empty()
        lonely_out = lonely.compute()
        assert lonely_out["index"].tolist() == [0, 1] and lonely_out["f"].shape == (2, 3)
        result = _evaluate(root, generated, cache)
        result["_gathered_index"] = gathered["index"].tolist()
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def copy_baseline(synthetic_root, tmp_path_factory) -> Path:
    index = read_deepfashion_index(synthetic_root)
    return copy_source(index.pairs["test"], index.image_path, tmp_path_factory.mktemp("copy"), size=PROTOCOL.size)


def test_two_gloo_processes_give_exactly_the_single_process_numbers(synthetic_root, copy_baseline, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: CPU conv kernels sum in a thread-count-dependent order
    try:
        single = _evaluate(str(synthetic_root), str(copy_baseline), None)
    finally:
        torch.set_num_threads(threads)
    assert single["n_pairs"] == 24 and all(v is not None for v in single["metrics"].values()), single["unavailable"]

    cache = tmp_path / "cache"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(synthetic_root), str(copy_baseline), str(cache), str(tmp_path)),
             nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r.pop("_gathered_index") == list(range(7))  # every item once, none padded or duplicated
        assert r == single  # bitwise-equal floats, same counts, same unavailable reasons
    assert len(list(cache.glob("*.npz"))) == 2  # fid and fid_test real sets, written once by rank 0
    torch.set_num_threads(1)
    try:
        assert _evaluate(str(synthetic_root), str(copy_baseline), str(cache)) == single  # cache hit, same numbers
    finally:
        torch.set_num_threads(threads)


def test_indexed_values_refuse_double_counting():
    m = IndexedValues(["x"])
    m.update(torch.tensor([0, 1]), x=torch.tensor([1.0, 2.0]))
    m.update(torch.tensor([1]), x=torch.tensor([3.0]))
    with pytest.raises(RuntimeError, match="more than once"):
        m.compute()
