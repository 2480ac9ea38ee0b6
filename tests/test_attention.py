"""TruePose attention processors against eq. 6 by hand and straightforward reference computations."""
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pgpis.models.attention import (FusionContext, HPFAAttnProcessor, PlainAttnProcessor, ReferenceAttnProcessor,
                                    RegionCrossAttention,
                                    hpfa_weights, lowest_regions, mask_to_tokens, region_means, self_attention_layers,
                                    set_processors, source_attention, token_grid)
from pgpis.models.unets import build_unet


def test_hpfa_weights_hand_built_example():
    # one query row, four keys: (A' > 0, M = 1), (A' < 0, M = 1), (A' > 0, M = 0), (A' < 0, M = 0)
    logits = torch.tensor([[[[2.0, -1.0, 0.5, -3.0]]]])
    key_mask = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    w = hpfa_weights(logits, key_mask, delta=0.6, sigma=0.3)
    torch.testing.assert_close(w, torch.tensor([[[[1.6, 0.6, 0.3, 1.3]]]]))


def test_hpfa_weights_use_the_key_tokens_mask_for_every_query():
    logits = torch.tensor([[[[1.0, 1.0], [-1.0, -1.0]]]])  # 2 queries x 2 keys
    w = hpfa_weights(logits, torch.tensor([[True, False]]))
    torch.testing.assert_close(w, torch.tensor([[[[1.6, 0.3], [0.6, 1.3]]]]))


def _attn(dim=16, heads=2):
    torch.manual_seed(0)
    return Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)


def _naive_attention(q, k, v, heads, logit_weight=None, key_ok=None):
    """Per-head loops, explicit softmax."""
    b, n, c = q.shape
    d = c // heads
    out = torch.zeros(b, n, c)
    for i in range(b):
        for h in range(heads):
            s = slice(h * d, (h + 1) * d)
            a = q[i, :, s] @ k[i, :, s].T / math.sqrt(d)
            if logit_weight is not None:
                a = a * logit_weight(a, i)
            if key_ok is not None:
                a = a.masked_fill(~key_ok[i][None, :], float("-inf"))
            out[i, :, s] = torch.softmax(a, -1) @ v[i, :, s]
    return out


def test_source_attention_matches_reference():
    attn = _attn()
    tokens, mask = torch.randn(2, 6, 16), torch.rand(2, 6) > 0.5
    sa = source_attention(attn, tokens, key_mask=mask)

    def weight(a, i):
        pos = a > 0
        m = mask[i][None, :]
        return torch.where(m, torch.where(pos, 1.6, 0.6), torch.where(pos, 0.3, 1.3))

    ref = _naive_attention(attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens), 2, weight)
    torch.testing.assert_close(sa.hidden, ref, atol=1e-5, rtol=1e-5)
    plain = source_attention(attn, tokens)
    torch.testing.assert_close(plain.hidden, _naive_attention(attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens), 2),
                               atol=1e-5, rtol=1e-5)


def test_region_scores_are_mean_received_attention_per_class():
    attn = _attn()
    tokens = torch.randn(1, 4, 16)
    parsing = torch.tensor([[0, 2, 2, 5]])
    with torch.no_grad():
        sa = source_attention(attn, tokens, parsing=parsing, num_classes=6)
        q, k = attn.to_q(tokens)[0], attn.to_k(tokens)[0]
    probs = torch.stack([torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(8), -1) for s in (slice(0, 8), slice(8, 16))])
    received = probs.mean(dim=(0, 1))  # per key token
    expected = torch.tensor([received[0], float("inf"), received[1:3].mean(), float("inf"), float("inf"), received[3]])
    torch.testing.assert_close(sa.region_scores[0], expected)


def test_lowest_regions_skip_absent_and_disallowed():
    scores = torch.tensor([[0.1, 0.5, float("inf"), 0.2, 0.05]])
    allowed = torch.tensor([True, True, True, True, False])
    idx, valid = lowest_regions(scores, 2, allowed)
    assert idx.tolist() == [[0, 3]] and valid.tolist() == [[True, True]]
    idx, valid = lowest_regions(torch.tensor([[float("inf"), 0.3, float("inf")]]), 2)
    assert idx[0, 0].item() == 1 and valid.tolist() == [[True, False]]
    assert region_means(torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 1]]), 3)[0, 1].item() == 2.0


def test_token_grid_and_mask_vote():
    assert token_grid((64, 44), 64 * 44) == (64, 44)
    assert token_grid((64, 44), 16 * 11) == (16, 11)
    assert token_grid((64, 44), 8 * 6) == (8, 6)  # ceil halving, like stride-2 convs
    with pytest.raises(ValueError, match="no token grid"):
        token_grid((64, 44), 7)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = True  # the top-left token exactly
    mask[0, 2, 2] = True  # a quarter of the bottom-right token: below the vote
    assert mask_to_tokens(mask, (2, 2)).tolist() == [[True, False, False, False]]


def test_region_cross_attention_matches_reference_and_masks_slots():
    torch.manual_seed(0)
    caa = RegionCrossAttention(16, 8, heads=2)
    torch.nn.init.normal_(caa.to_v.weight)
    fused, clip = torch.randn(3, 5, 16), torch.randn(3, 2, 8)
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    out = caa(fused, clip, valid)
    ref = _naive_attention(caa.to_q(fused), caa.to_k(clip), caa.to_v(clip), 2, key_ok=valid.clone())
    torch.testing.assert_close(out[:2], ref[:2], atol=1e-5, rtol=1e-5)
    assert torch.all(out[2] == 0)  # no region: no refinement
    assert torch.all(RegionCrossAttention(16, 8, 2)(fused, clip, valid) == 0)  # zero-initialised value projection


def test_hpfa_processor_matches_reference():
    attn = _attn()
    caa = RegionCrossAttention(16, 8, heads=2)
    torch.nn.init.normal_(caa.to_v.weight, std=0.1)
    proc = HPFAAttnProcessor("l", attn, caa)
    torch.nn.init.normal_(proc.to_k_h.weight)  # differ from the copied to_k
    attn.set_processor(proc)
    f, h_src, clip = torch.randn(2, 6, 16), torch.randn(2, 5, 16), torch.randn(2, 2, 8)
    keep = torch.tensor([True, False])
    ctx = FusionContext({"l/hpfa": h_src, "l/clip": clip, "l/clip_valid": torch.ones(2, 2, dtype=torch.bool)}, keep)
    out = attn(f, fusion=ctx)
    own = _naive_attention(attn.to_q(f), attn.to_k(f), attn.to_v(f), 2)
    f_tilde = _naive_attention(attn.to_q(f), proc.to_k_h(h_src), proc.to_v_h(h_src), 2)
    refined = f_tilde + _naive_attention(caa.to_q(f_tilde), caa.to_k(clip), caa.to_v(clip), 2)
    expected = attn.to_out[0](own + keep[:, None, None] * refined)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert ctx.used == {"l"}


def test_hpfa_projections_start_as_copies_of_the_layer():
    attn = _attn()
    proc = HPFAAttnProcessor("l", attn)
    assert torch.equal(proc.to_k_h.weight, attn.to_k.weight) and torch.equal(proc.to_v_h.weight, attn.to_v.weight)


def test_reference_processor_matches_reference():
    attn = _attn()
    attn.set_processor(ReferenceAttnProcessor("l"))
    f, ref = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    keep = torch.tensor([True, False])
    out = attn(f, fusion=FusionContext({"l/tokens": ref}, keep))
    both = torch.cat([f, ref], 1)
    key_ok = torch.cat([torch.ones(2, 6, dtype=torch.bool), keep[:, None].expand(2, 4)], 1)
    expected = attn.to_out[0](_naive_attention(attn.to_q(f), attn.to_k(both), attn.to_v(both), 2, key_ok=key_ok))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_reference_attention_with_own_tokens_reproduces_the_unet():
    """Duplicated keys and values leave softmax unchanged: F' = F gives the UNet's own output."""
    torch.manual_seed(0)
    unet = build_unet("tiny").eval()
    x, t, ehs = torch.randn(2, 4, 16, 16), torch.tensor([3, 700]), torch.randn(2, 1, 32)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=ehs).sample
        layers = self_attention_layers(unet)
        captured: dict = {}

        def grab(name):
            return lambda mod, args, kwargs: captured.__setitem__(name, args[0] if args else kwargs["hidden_states"])

        hooks = [unet.get_submodule(n).register_forward_pre_hook(grab(n), with_kwargs=True) for n in layers]
        unet(x, t, encoder_hidden_states=ehs)
        for h in hooks:
            h.remove()
        set_processors(unet, {n: ReferenceAttnProcessor(n) for n in layers})
        ctx = FusionContext({f"{n}/tokens": captured[n] for n in layers}, torch.tensor([True, True]))
        fused = unet(x, t, encoder_hidden_states=ehs, cross_attention_kwargs={"fusion": ctx}).sample
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
    assert ctx.used == set(layers)


@pytest.mark.parametrize("tokens,dropout", [(1, 0.0), (3, 0.0), (1, 0.5)])
def test_plain_processor_matches_diffusers_on_cross_attention(tokens, dropout):
    """One key: the closed form to_out(to_v(token)) equals diffusers' attention, values and gradients; with more
    tokens or an active output dropout the processor is diffusers' own."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8, dropout=dropout).eval()
    x, ctx = torch.randn(3, 10, 16, requires_grad=True), torch.randn(3, tokens, 8, requires_grad=True)
    results = []
    for processor in (AttnProcessor2_0(), PlainAttnProcessor()):
        attn.zero_grad()
        out = processor(attn, x, ctx)
        wrt = [x, ctx, attn.to_v.weight, attn.to_out[0].bias]
        grads = torch.autograd.grad(out.square().sum(), wrt, allow_unused=True)  # one key: x only moves the query
        results.append((out, [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]))
    (ref, ref_grads), (got, got_grads) = results
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
    for a, b in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    attn.train()  # active dropout: the per-query dropout masks of diffusers' path, never one shared mask
    torch.manual_seed(1)
    out = PlainAttnProcessor()(attn, x, ctx)
    assert (tokens == 1 and dropout == 0.0) == bool((out == out[:, :1]).all())


def test_set_processors_rejects_unknown_layers():
    unet = build_unet("tiny")
    with pytest.raises(ValueError, match="no attention layer"):
        set_processors(unet, {"down_blocks.9.attn1": ReferenceAttnProcessor("x")})
