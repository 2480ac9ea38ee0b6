"""IPF building blocks: preprocessing policy, encoders, Combiner, losses, retrieval, fusion export."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from pgpis.errors import DataFormatError, MissingWeightsError
from pgpis.losses.contrastive import ContrastiveLoss, baseline_loss, info_nce, source_enhanced_loss
from pgpis.metrics.retrieval import RetrievalCollector, format_table, retrieval_metrics, update_metrics_json
from pgpis.models.combiner import Combiner
from pgpis.models.encoders import (
    CLIP_MEAN, CLIPImageEncoder, EncoderPreprocess, EncoderSpec, build_dinov2, build_image_encoder,
    dinov2_preprocess, encoder_from_export,
)
from pgpis.models.fusion import FusionModel, load_fusion_model


# ----------------------------------------------------------------------------- preprocessing
def test_preprocess_squashes_whole_image_without_crop():
    pre = EncoderPreprocess((32, 32), CLIP_MEAN, (1.0, 1.0, 1.0))
    img = -torch.ones(1, 3, 64, 44)
    img[..., :4, :] = 1.0  # a white band at the very top (a head a centre crop would cut)
    img[..., -4:, :] = 1.0  # and at the very bottom (feet)
    out = pre(img)
    assert out.shape == (1, 3, 32, 32)
    top = out[0, 0, 0].mean() + CLIP_MEAN[0]  # back to [0, 1]
    bottom = out[0, 0, -1].mean() + CLIP_MEAN[0]
    middle = out[0, 0, 16].mean() + CLIP_MEAN[0]
    assert top > 0.9 and bottom > 0.9 and middle < 0.1


def test_preprocess_normalises_with_encoder_statistics_and_skips_resize_at_size():
    pre = EncoderPreprocess((8, 8), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = torch.zeros(2, 3, 8, 8)  # mid-grey in [-1, 1] = 0.5 in [0, 1]
    assert torch.allclose(pre(x), torch.zeros_like(x))
    assert torch.allclose(pre(torch.ones(1, 3, 8, 8)), torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        pre(torch.zeros(3, 8, 8))


# ----------------------------------------------------------------------------- encoders
def test_clip_tiny_preset_embeds_and_rebuilds_from_export(tmp_path):
    enc = build_image_encoder(EncoderSpec(preset="tiny"))
    assert isinstance(enc, CLIPImageEncoder) and enc.embed_dim == 32 and enc.input_size == (64, 64)
    x = torch.rand(2, 3, 80, 56) * 2 - 1  # any size: squashed to 64x64
    assert enc(x).shape == (2, 32)
    again = encoder_from_export(json.loads(json.dumps(enc.export_config())))
    again.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(again.eval()(x), enc.eval()(x), atol=1e-6)


def test_clip_from_local_folder_and_offline_hub_error(tmp_path):
    enc = build_image_encoder(EncoderSpec(preset="tiny"))
    enc.model.save_pretrained(tmp_path / "clip")
    loaded = build_image_encoder(EncoderSpec(preset=None, name_or_path=str(tmp_path / "clip")))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), enc.eval()(x), atol=1e-6)
    with pytest.raises(MissingWeightsError, match="openai/clip-vit-large-patch14"):
        build_image_encoder(EncoderSpec(preset=None, name_or_path="openai/clip-vit-large-patch14"))


def test_open_clip_backend_tiny_and_local_weight_file(tmp_path):
    enc = build_image_encoder(EncoderSpec(backend="open_clip", preset="tiny"))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert enc(x).shape == (2, 32)
    rebuilt = encoder_from_export(enc.export_config())
    rebuilt.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), enc.eval()(x), atol=1e-6)
    with pytest.raises(DataFormatError, match="model.encoder.pretrained"):
        build_image_encoder(EncoderSpec(backend="open_clip", preset=None, name_or_path="ViT-B-32"))
    with pytest.raises(MissingWeightsError, match="missing.bin"):
        build_image_encoder(EncoderSpec(backend="open_clip", preset=None, name_or_path="ViT-B-32",
                                        pretrained=str(tmp_path / "missing.bin")))


def test_encoder_spec_errors_name_the_key():
    with pytest.raises(DataFormatError, match="exactly one of preset and name_or_path"):
        build_image_encoder(EncoderSpec(preset="tiny", name_or_path="x"))
    with pytest.raises(DataFormatError, match=r"model.encoder.preset.*unknown clip preset 'huge'"):
        build_image_encoder(EncoderSpec(preset="huge"))
    with pytest.raises(DataFormatError, match="unknown keys"):
        EncoderSpec.coerce({"preset": "tiny", "typo": 1})


def test_frozen_encoder_stays_in_eval_without_grads():
    enc = build_image_encoder(EncoderSpec(preset="tiny", trainable=False))
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


def test_dinov2_tiny_preset_and_preprocess():
    model = build_dinov2("tiny")
    assert model.config.hidden_size == 32 and model.config.patch_size == 8
    pre = dinov2_preprocess((64, 64))
    out = model(pixel_values=pre(torch.rand(1, 3, 96, 66) * 2 - 1)).last_hidden_state
    assert out.shape == (1, 1 + 8 * 8, 32)
    with pytest.raises(MissingWeightsError, match="facebook/dinov2-large"):
        build_dinov2(None, "facebook/dinov2-large")


# ----------------------------------------------------------------------------- combiner
def test_combiner_output_unit_norm_and_dropout_only_in_training():
    comb = Combiner(16, dropout=0.5)
    assert (comb.projection_dim, comb.hidden_dim) == (64, 128)
    s, p = torch.randn(4, 16), torch.randn(4, 16)
    comb.eval()
    out = comb(s, p)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.equal(out, comb(s, p))  # deterministic in eval
    comb.train()
    assert not torch.equal(comb(s, p), comb(s, p))  # dropout active in training
    with pytest.raises(ValueError, match=r"\[B, 16\]"):
        comb(torch.randn(4, 8), torch.randn(4, 8))


def test_combiner_residual_mix_follows_dynamic_scalar():
    comb = Combiner(4, dropout=0.0).eval()
    torch.nn.init.zeros_(comb.residual[-1].weight), torch.nn.init.zeros_(comb.residual[-1].bias)
    torch.nn.init.zeros_(comb.dynamic_scalar[-2].weight)
    torch.nn.init.constant_(comb.dynamic_scalar[-2].bias, 100.0)  # lambda = 1 -> output = pose direction
    s, p = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(comb(s, p), F.normalize(p, dim=-1), atol=1e-5)


# ----------------------------------------------------------------------------- losses
def test_losses_match_hand_computation():
    torch.manual_seed(0)
    f, t, s = torch.randn(3, 5), torch.randn(3, 5), torch.randn(3, 5)
    tau = 0.07
    logits = F.normalize(f, dim=-1) @ F.normalize(t, dim=-1).T / tau
    expected = -torch.log_softmax(logits, dim=1).diag().mean()
    assert torch.allclose(baseline_loss(f, t, tau), expected, atol=1e-5)
    q, k = F.normalize(torch.cat([f, s]), dim=-1), F.normalize(torch.cat([t, s]), dim=-1)
    expected_se = -torch.log_softmax(q @ k.T / tau, dim=1).diag().mean()
    assert torch.allclose(source_enhanced_loss(f, t, s, tau), expected_se, atol=1e-5)
    with pytest.raises(ValueError):
        info_nce(f, t[:2], tau)


def test_source_enhanced_penalises_fusion_that_copies_the_source():
    torch.manual_seed(0)
    s, t = torch.randn(8, 16), torch.randn(8, 16)
    copy_source = s.clone()  # a fusion embedding that is just the source
    assert source_enhanced_loss(copy_source, t, s, 0.07) > 10 * source_enhanced_loss(t, t, s, 0.07)


def test_contrastive_loss_temperature_fixed_or_learnable():
    fixed = ContrastiveLoss("baseline", 0.07)
    assert not list(fixed.parameters()) and math.isclose(float(fixed.temperature), 0.07, rel_tol=1e-5)
    learn = ContrastiveLoss("source_enhanced", 0.07, learnable=True)
    f, t, s = (torch.randn(4, 8) for _ in range(3))
    learn(f, t, s).backward()
    assert learn.log_scale.grad is not None
    with pytest.raises(ValueError, match="model.loss"):
        ContrastiveLoss("triplet")


# ----------------------------------------------------------------------------- retrieval
def test_retrieval_metrics_on_a_known_gallery():
    gallery = torch.eye(4)
    queries = torch.tensor([[1.0, 0.9, 0, 0], [0, 0.5, 1.0, 0], [0, 0, 0, 1.0]])
    target = torch.tensor([1, 2, 0])
    source = torch.tensor([0, 1, 3])
    row = retrieval_metrics(queries, gallery, target, source)
    # ranks: query0 -> target 1 is 2nd; query1 -> target 2 is 1st; query2 -> target 0 ties with 1, 2 at 0 -> 2nd
    assert row["R@1"] == pytest.approx(1 / 3) and row["R@3"] == pytest.approx(1.0)
    assert row["mean_rank"] == pytest.approx((2 + 1 + 2) / 3)
    assert row["source_top1"] == pytest.approx(2 / 3)  # query0 and query2 put their source first


def test_collector_dedupes_and_merges_rank_parts():
    torch.manual_seed(0)
    emb = {n: torch.randn(6) for n in "abcd"}
    pairs = [("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")]

    def part(indices):
        c = RetrievalCollector()
        for i in indices:
            s, t = pairs[i]
            c.add_gallery([s, t], torch.stack([emb[s], emb[t]]))
            c.add_queries([i], emb[t][None] + 0.01, [s], [t])
        return c

    r0, r1 = part([0, 2, 0]), part([1, 3, 3])  # padded duplicates on both ranks
    parts = [(r0.gallery, r0.queries), (r1.gallery, r1.queries)]
    rows = r0.compute(gather=lambda obj: parts)
    assert rows["fusion"]["R@1"] == 1.0 and rows["A1"]["R@1"] == 0.0 and rows["A1"]["source_top1"] == 1.0
    single = part([0, 1, 2, 3]).compute(gather=lambda obj: [obj])
    assert single == rows
    assert r0.missing(["a", "x", "x", "y"]) == [1, 3]


def test_metrics_json_merges_rows_and_table_prints(tmp_path):
    row = {"R@1": 0.5, "R@3": 0.75, "R@5": 1.0, "mean_rank": 2.0, "source_top1": 0.1}
    path = tmp_path / "ipf" / "metrics.json"
    update_metrics_json(path, {"A1": row, "baseline": row})
    data = update_metrics_json(path, {"source_enhanced": row})
    assert set(data) == {"A1", "baseline", "source_enhanced"} and set(data["A1"]) == set(row)
    table = format_table(data)
    assert table.splitlines()[2].startswith("| A1 |") and "source_enhanced" in table.splitlines()[-1]


# ----------------------------------------------------------------------------- fusion export
def test_fusion_export_roundtrip_is_frozen(tmp_path):
    enc = build_image_encoder(EncoderSpec(preset="tiny"))
    model = FusionModel(enc, Combiner(enc.embed_dim, dropout=0.5),
                        build_image_encoder(EncoderSpec(backend="open_clip", preset="tiny")))
    model.save(tmp_path / "fm")
    loaded = load_fusion_model(tmp_path / "fm")
    src, pose = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    loaded.train()  # a parent LightningModule calls train(): must stay in eval (dropout off)
    assert not loaded.training and not loaded.combiner.residual[2].training
    assert not any(p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        assert torch.allclose(loaded(src, pose), model.eval()(src, pose), atol=1e-6)
        assert torch.allclose(loaded(src, pose), loaded(src, pose))
        assert loaded.encode_image(src).shape == (2, 32)


def test_load_fusion_model_errors(tmp_path):
    with pytest.raises(MissingWeightsError, match="make train-ipf"):
        load_fusion_model(tmp_path / "nowhere")
    enc = build_image_encoder(EncoderSpec(preset="tiny"))
    FusionModel(enc, Combiner(32)).save(tmp_path / "fm")
    (tmp_path / "fm" / "config.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="config.json:1"):
        load_fusion_model(tmp_path / "fm")
