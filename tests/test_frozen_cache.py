"""Frozen-encoder memoisation (FrozenOutputCache) and SourceNet's early stop: same outputs, less work."""
from __future__ import annotations

import pytest
import torch

from pgpis.models.attention import FUSION_KWARG, CaptureStore
from pgpis.models.frozen_cache import FrozenOutputCache, row_keys
from test_fpdm import tiny_batch, tiny_denoiser
from test_truepose import make_batch, make_model


class CountingFn:
    """A deterministic per-row function that records how many rows it was asked for."""

    def __init__(self):
        self.rows: list[int] = []

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.rows.append(x.shape[0])
        out = x.flatten(1).sum(1, keepdim=True) * 2
        return out if y is None else out + y.flatten(1).float().sum(1, keepdim=True)


def test_only_unseen_rows_are_computed_and_outputs_match():
    fn, cache = CountingFn(), FrozenOutputCache(16)
    a, b = torch.randn(4, 3, 2), torch.randn(2, 3, 2)
    torch.testing.assert_close(cache(fn, a), fn(a))
    fn.rows.clear()
    mixed = torch.cat([a[2:], b, a[:1]])  # 2 seen, 2 new, 1 seen
    torch.testing.assert_close(cache(fn, mixed), fn(mixed))
    assert fn.rows[0] == 2  # the cached call computed only the two new rows
    assert (cache.hits, cache.misses) == (3, 6)


def test_augmented_inputs_are_new_keys():
    x = torch.randn(2, 3, 4, 4)
    flipped, jittered = x.flip(-1), x + 1e-6
    keys = row_keys([x]) + row_keys([flipped]) + row_keys([jittered])
    assert len(set(keys)) == 6
    assert row_keys([x]) == row_keys([x.clone()])
    # every input takes part in the key (e.g. the target pose of the fusion model)
    assert row_keys([x, torch.zeros(2, 1)]) != row_keys([x, torch.ones(2, 1)])
    with pytest.raises(ValueError, match="batch size"):
        row_keys([x, torch.zeros(3, 1)])


def test_lru_bound_tuple_outputs_and_off_switch():
    cache = FrozenOutputCache(3)
    pair = lambda x: (x * 2, x > 0)  # noqa: E731
    x = torch.randn(5, 2)
    out = cache(pair, x)
    assert isinstance(out, tuple) and torch.equal(out[0], x * 2) and torch.equal(out[1], x > 0)
    assert len(cache) == 3  # least recently used rows evicted
    again = cache(pair, x[-3:])
    assert cache.hits == 3 and torch.equal(again[1], x[-3:] > 0)
    bypass = cache(pair, x, use=False)  # e.g. sampling: no lookup, no store
    assert cache.hits == 3 and len(cache) == 3 and torch.equal(bypass[0], x * 2)
    fn, off = CountingFn(), FrozenOutputCache(0)
    off(fn, x), off(fn, x)
    assert not off.enabled and fn.rows == [5, 5] and len(off) == 0
    with pytest.raises(ValueError, match=">= 0"):
        FrozenOutputCache(-1)


def test_fpdm_training_reuses_frozen_outputs_and_matches_uncached():
    cached, plain = tiny_denoiser(frozen_cache_size=64), tiny_denoiser(frozen_cache_size=0)
    cached.train(), plain.train()
    batch = tiny_batch()
    calls = []
    hook = cached.source_encoder.register_forward_hook(lambda *a: calls.append(1))
    first = cached.encode_conditions(batch)
    second = cached.encode_conditions(batch)
    hook.remove()
    assert len(calls) == 1  # the second epoch's visit finds DINOv2's tokens cached
    assert cached.fusion_cache.hits == len(batch["dino_source"])
    reference = plain.encode_conditions(batch)
    for key in ("source", "fusion", "pose"):
        torch.testing.assert_close(second[key], reference[key], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(first[key], second[key])
    # gradients still reach the trainable projection and fusion MLP through cached encoder outputs
    (second["source"].sum() + second["fusion"].sum()).backward()
    assert cached.source_projection.net[0].weight.grad is not None
    assert cached.fusion_adapter.net[-1].weight.grad is not None
    cached.eval()
    cached.encode_conditions(batch)
    assert cached.source_cache.hits == len(batch["dino_source"])  # sampling does not go through the cache


def test_truepose_training_reuses_clip_and_matches_uncached():
    model = make_model(frozen_cache_size=64)
    den = model.denoiser.train()
    batch = make_batch()
    crops = []
    hook = den.clip.register_forward_hook(lambda *a: crops.append(1))
    first = den.encode_conditions(batch)
    n_first = len(crops)
    second = den.encode_conditions(batch)
    hook.remove()
    assert n_first == 2 and len(crops) == n_first  # global token + region crops once, then cached
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, atol=1e-5, rtol=1e-4)


def test_sourcenet_stops_after_the_last_fused_layer_with_the_same_features():
    den = make_model().denoiser
    assert den._last_fused_layer == den.layers[-1] and den._last_fused_layer.startswith("up_blocks")
    x = torch.randn(2, 12, 16, 12)
    t0, tokens = torch.zeros(2, dtype=torch.long), torch.randn(2, 1, den.target_net.config.cross_attention_dim)
    full: dict = {}
    with torch.no_grad():
        den.source_net(x, t0, encoder_hidden_states=tokens, cross_attention_kwargs={FUSION_KWARG: full})
        early = den._source_tokens(x, tokens, (16, 12))
    assert set(early) == set(full) == set(den.layers)
    for name in den.layers:
        torch.testing.assert_close(early[name], full[name], atol=0, rtol=0)
    ran = []
    hook = den.source_net.conv_out.register_forward_hook(lambda *a: ran.append(1))
    with torch.no_grad():
        den.source_net(x, t0, encoder_hidden_states=tokens,
                       cross_attention_kwargs={FUSION_KWARG: CaptureStore(stop_after=None)})
        den._source_tokens(x, tokens, (16, 12))
    hook.remove()
    assert ran == [1]  # only the run without stop_after reached conv_out
