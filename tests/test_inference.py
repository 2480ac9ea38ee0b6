"""Inference API: checkpoint -> export -> load round trip, pose inputs, batching, dtype, CLI, and the errors.

The checkpoints are the shipped tiny configs trained for two steps (`tiny_ldm_checkpoints`), so the inputs
inference builds are the ones those configs ask for (TruePose: source parsing and source pose).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pgpis.data import keypoints as kpt
from pgpis.data.deepfashion.layout import read_deepfashion_index, stem
from pgpis.errors import DataFormatError, MissingWeightsError
from pgpis.inference import export, load_pipeline, load_target_pose
from pgpis.commands.generate import generate_main

STEPS = 2


def _arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def index(synthetic_root):
    return read_deepfashion_index(synthetic_root, parsing=True)


@pytest.fixture(scope="module")
def pair(index):
    return index.pairs["test"][0]


@pytest.fixture(scope="module")
def fpdm(tiny_ldm_checkpoints):
    return load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu")


@pytest.fixture(scope="module")
def fpdm_export(tiny_ldm_checkpoints, tmp_path_factory):
    return export(tiny_ldm_checkpoints["fpdm"], tmp_path_factory.mktemp("export") / "fpdm")


def test_checkpoint_carries_sizes_and_kind(fpdm):
    assert fpdm.kind == "fpdm" and fpdm.image_size == (32, 24)
    assert fpdm.encoder_inputs == {"dino": (32, 32), "clip": (64, 64)}
    assert not fpdm.module.training and fpdm.ema is False


def test_export_folder_layout(fpdm_export):
    meta = json.loads((fpdm_export / "pipeline.json").read_text())
    assert meta["format"] == "pgpis-pipeline" and meta["kind"] == "fpdm"
    for rel in ("unet/config.json", "scheduler/scheduler_config.json", "fusion_model/config.json",
                "fusion_model/model.safetensors", "weights/denoiser.unet.safetensors",
                "weights/denoiser.pose_encoder.safetensors", "weights/denoiser.fusion_adapter.safetensors"):
        assert (fpdm_export / rel).is_file(), rel
    assert not list(fpdm_export.rglob("*.ckpt"))  # no Lightning state
    assert "/" not in json.dumps(meta["relative_paths"]).replace("\\/", "")  # movable folder


def test_round_trip_same_seed_same_image(fpdm, fpdm_export, index, pair):
    src, tgt = pair
    exported = load_pipeline(fpdm_export, device="cpu")
    a = fpdm.generate(index.image_path(src), index.keypoints[tgt], seed=5, steps=STEPS)
    b = exported.generate(index.image_path(src), index.keypoints[tgt], seed=5, steps=STEPS)
    assert isinstance(a, Image.Image) and a.size == (24, 32)
    np.testing.assert_array_equal(_arr(a), _arr(b))
    c = exported.generate(index.image_path(src), index.keypoints[tgt], seed=6, steps=STEPS)
    assert np.abs(_arr(a) - _arr(c)).max() > 0


def test_batched_equals_one_by_one_and_broadcasts(fpdm, index, pair):
    src, tgt = pair
    poses = [index.keypoints[tgt], index.keypoints[src]]
    batch = fpdm.generate(index.image_path(src), poses, seed=[11, 12], steps=STEPS)
    assert isinstance(batch, list) and len(batch) == 2
    one = fpdm.generate(index.image_path(src), poses[1], seed=12, steps=STEPS)
    np.testing.assert_allclose(_arr(batch[1]), _arr(one), atol=1)


def test_pose_inputs_agree(tmp_path, index, pair):
    _, tgt = pair
    kp = index.keypoints[tgt]
    kpt.write_pcdms_keypoints(tmp_path / "pose.txt", kpt.cfld_to_pcdms_frame(kp))
    y, x = kpt.format_cfld_keypoints(kp)
    (tmp_path / "pose.csv").write_text(f"name:keypoints_y:keypoints_x\n{tgt}:{y}:{x}\nother.jpg:{y}:{x}\n")
    (tmp_path / "pose.json").write_text(json.dumps(kp.tolist()))
    rendered = load_target_pose(kp).render((32, 24))
    for source in (tmp_path / "pose.txt", f"{tmp_path / 'pose.csv'}#{tgt}", tmp_path / "pose.json",
                   kpt.rescale_keypoints(kp, kpt.CFLD_FRAME, (512, 352))):
        frame = (512, 352) if isinstance(source, np.ndarray) else kpt.CFLD_FRAME
        pose = load_target_pose(source, frame)
        np.testing.assert_allclose(pose.keypoints, kp, atol=1e-3)
    rendered.save(tmp_path / "pose.png")
    from_image = load_target_pose(tmp_path / "pose.png")
    assert from_image.keypoints is None and from_image.render((32, 24)).size == (24, 32)
    with pytest.raises(DataFormatError, match="cannot tell which pose"):
        load_target_pose(tmp_path / "pose.csv")
    with pytest.raises(DataFormatError, match=r"shape \[18, 2\]"):
        load_target_pose(np.zeros((17, 2)))


def test_bfloat16_runs_close_to_float32(fpdm_export, index, pair):
    src, tgt = pair
    full = load_pipeline(fpdm_export, device="cpu")
    half = load_pipeline(fpdm_export, device="cpu", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    a = full.generate(index.image_path(src), index.keypoints[tgt], seed=1, steps=STEPS)
    b = half.generate(index.image_path(src), index.keypoints[tgt], seed=1, steps=STEPS)
    assert np.abs(_arr(a) - _arr(b)).mean() < 8


def test_truepose_round_trip_and_needs(tiny_ldm_checkpoints, tmp_path, index, pair):
    src, tgt = pair
    ckpt = load_pipeline(tiny_ldm_checkpoints["truepose"], device="cpu")
    assert ckpt.kind == "truepose" and ckpt.needs_parsing
    assert ckpt.needs == ("source_parsing", "source_pose", "target_keypoints")  # experiments/tiny/truepose.yaml
    exported = load_pipeline(export(tiny_ldm_checkpoints["truepose"], tmp_path / "tp"), device="cpu")
    assert exported.needs == ckpt.needs
    args = (index.image_path(src), index.keypoints[tgt])
    given = dict(source_parsing=index.parsing_path(src), source_pose=index.keypoints[src])
    a = ckpt.generate(*args, **given, seed=2, steps=STEPS)
    b = exported.generate(*args, **given, seed=2, steps=STEPS)
    np.testing.assert_array_equal(_arr(a), _arr(b))
    assert ckpt.ema and json.loads((tmp_path / "tp" / "pipeline.json").read_text())["ema"] is True
    # EMA: state_dict holds the averages, current_model_state the live weights; make them differ, export, compare
    raw = torch.load(tiny_ldm_checkpoints["truepose"], map_location="cpu", weights_only=False)
    key = "denoiser.target_net.conv_in.weight"
    raw["current_model_state"][key] = raw["state_dict"][key] + 1.0
    torch.save(raw, tmp_path / "ema.ckpt")
    export(tmp_path / "ema.ckpt", tmp_path / "tp_ema")
    exported_weight = load_file(str(tmp_path / "tp_ema" / "weights" / "denoiser.target_net.safetensors"))[key]
    torch.testing.assert_close(exported_weight, raw["state_dict"][key], rtol=0, atol=0)  # the averaged weights
    with pytest.raises(ValueError, match="parsing map"):  # not made from the photo: the parser is switched off
        exported.generate(*args, steps=STEPS, parser=None)
    with pytest.raises(ValueError, match="rendered pose image is not enough"):
        exported.generate(args[0], load_target_pose(args[1]).render((32, 24)), source_parsing=index.parsing_path(src))


def test_missing_and_mismatched_sources_say_what_was_expected(tmp_path, tiny_ldm_checkpoints):
    with pytest.raises(MissingWeightsError, match="pgpis fit"):
        load_pipeline(tmp_path / "nope.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="pipeline.json"):
        load_pipeline(tmp_path / "empty")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1e-4}}, tmp_path / "plain.ckpt")
    with pytest.raises(DataFormatError, match="no model config"):
        load_pipeline(tmp_path / "plain.ckpt")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(DataFormatError, match="junk.ckpt"):
        load_pipeline(tmp_path / "junk.ckpt")
    with pytest.raises(MissingWeightsError, match="fusion_model"):
        load_pipeline(tiny_ldm_checkpoints["fpdm"], fusion_model=tmp_path / "moved")


def test_pgpis_generate_single_and_pairs(tiny_ldm_checkpoints, synthetic_root, tmp_path, index, pair):
    from pgpis.cli import main

    src, tgt = pair
    kpt.write_pcdms_keypoints(tmp_path / "pose.txt", kpt.cfld_to_pcdms_frame(index.keypoints[tgt]))
    out = tmp_path / "one.png"
    assert main(["generate", "--checkpoint", str(tiny_ldm_checkpoints["fpdm"]), "--source", str(index.image_path(src)),
                 "--pose", str(tmp_path / "pose.txt"), "--out", str(out), "--steps", str(STEPS),
                 "--guidance", "1.5", "2.5", "--seed", "3"]) == 0
    assert Image.open(out).size == (24, 32)
    pairs = index.pairs["test"][:2]
    (tmp_path / "pairs.csv").write_text("from,to\n" + "".join(f"{s},{t}\n" for s, t in pairs))
    assert generate_main(["--checkpoint", str(tiny_ldm_checkpoints["truepose"]), "--pairs", str(tmp_path / "pairs.csv"),
                          "--root", str(synthetic_root), "--out", str(tmp_path / "many"), "--steps", str(STEPS)]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(f"{stem(s)}_to_{stem(t)}.png" for s, t in pairs)
    (tmp_path / "bad.csv").write_text("from,to\nnot_an_image.jpg,also_not.jpg\n")
    with pytest.raises(DataFormatError, match="bad.csv:2"):
        generate_main(["--checkpoint", str(tiny_ldm_checkpoints["truepose"]), "--pairs", str(tmp_path / "bad.csv"),
                       "--root", str(synthetic_root), "--out", str(tmp_path / "bad")])


def test_export_copies_towers_named_by_path_so_the_folder_is_self_contained(tmp_path, index, pair, tiny_ldm_checkpoints):
    """A DINOv2 loaded from a local folder (as from a hub id) is saved into the export; the original can go."""
    import shutil

    from pgpis.inference.checkpoint import instantiate
    from pgpis.inference.export import export_pipeline
    from pgpis.inference.pipeline import Pipeline
    from pgpis.models.encoders import build_dinov2

    torch.manual_seed(0)
    build_dinov2("tiny").save_pretrained(tmp_path / "dinov2")
    config = {"_class_path": "pgpis.stages.fusion_ldm.FusionLDM",
              "denoiser": {"class_path": "pgpis.models.fpdm.FPDMDenoiser", "init_args": {
                  "unet": {"preset": "tiny", "in_channels": 12, "out_channels": 12}, "downsample_factor": 2,
                  "source_encoder": {"preset": None, "name_or_path": str(tmp_path / "dinov2"), "size": [32, 32]},
                  "fusion": "ipf", "fusion_model": str(tiny_ldm_checkpoints["fusion_model"])}},
              "first_stage": {"class_path": "pgpis.diffusion.PixelUnshuffleFirstStage", "init_args": {"factor": 2}}}
    pipe = Pipeline(instantiate(config), (32, 24), {"dino": (32, 32), "clip": (64, 64)}, config=config, device="cpu")
    out = export_pipeline(pipe, tmp_path / "export")
    assert (out / "source_encoder" / "config.json").is_file()
    assert not (out / "weights" / "denoiser.source_encoder.safetensors").exists()  # stored once, in its folder
    shutil.rmtree(tmp_path / "dinov2")
    src, tgt = pair
    a = pipe.generate(index.image_path(src), index.keypoints[tgt], seed=0, steps=STEPS)
    b = load_pipeline(out, device="cpu").generate(index.image_path(src), index.keypoints[tgt], seed=0, steps=STEPS)
    np.testing.assert_array_equal(_arr(a), _arr(b))


def test_relative_fusion_model_path_resolves_beside_the_checkpoint(tmp_path, monkeypatch, tiny_ldm_checkpoints):
    """Configs name the IPF export relative to where `pgpis fit` ran (outputs/ipf/fusion_model); load from anywhere."""
    import shutil

    raw = torch.load(tiny_ldm_checkpoints["fpdm"], map_location="cpu", weights_only=False)
    raw["hyper_parameters"]["denoiser"]["init_args"]["fusion_model"] = "outputs/ipf/fusion_model"
    run = tmp_path / "repo" / "outputs" / "ldm" / "checkpoints"
    run.mkdir(parents=True)
    torch.save(raw, run / "last.ckpt")
    shutil.copytree(tiny_ldm_checkpoints["fusion_model"], tmp_path / "repo" / "outputs" / "ipf" / "fusion_model")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    pipe = load_pipeline(run / "last.ckpt", device="cpu")
    assert pipe.kind == "fpdm"


def test_inputs_match_what_the_datamodule_builds(tiny_ldm_checkpoints, synthetic_root, index, pair):
    """make_batch renders source pose, target pose, parsing and keypoints exactly as the DeepFashion dataset does."""
    from pgpis.data.deepfashion import DeepFashionDataset

    src, tgt = pair
    pipe = load_pipeline(tiny_ldm_checkpoints["truepose"], device="cpu")
    sample = DeepFashionDataset(index, [pair], image_size=pipe.image_size, parsing=True)[0]
    batch = pipe.make_batch([index.image_path(src)], [load_target_pose(index.keypoints[tgt])],
                            [index.parsing_path(src)], [load_target_pose(index.keypoints[src])])
    for key in pipe.keys_read:
        torch.testing.assert_close(batch[key][0], sample[key], rtol=0, atol=0, msg=key)
    assert {"source_pose", "source_parsing", "target_keypoints"} <= set(pipe.keys_read)


def test_needs_are_asked_of_the_denoiser_not_hard_coded(tiny_ldm_checkpoints, index, pair):
    """A TruePose with source_pose off (the paper preset's choice) needs no source pose; FPDM needs neither input;
    a key the pipeline cannot build is named."""
    from pgpis.inference.checkpoint import instantiate
    from pgpis.inference.pipeline import Pipeline

    def truepose(**denoiser_args) -> Pipeline:
        torch.manual_seed(0)
        config = {"_class_path": "pgpis.stages.parsing_siamese_ldm.ParsingSiameseLDM",
                  "denoiser": {"class_path": "pgpis.models.truepose.SiameseDenoiser", "init_args": {
                      "unet": {"preset": "tiny", "in_channels": 12, "out_channels": 12}, "downsample_factor": 2,
                      **denoiser_args}},
                  "first_stage": {"class_path": "pgpis.diffusion.PixelUnshuffleFirstStage", "init_args": {"factor": 2}}}
        return Pipeline(instantiate(config), (32, 24), config=config, device="cpu")

    src, tgt = pair
    plain = truepose()
    assert plain.needs == ("source_parsing", "target_keypoints") and not plain.needs_source_pose
    image = plain.generate(index.image_path(src), index.keypoints[tgt], source_parsing=index.parsing_path(src),
                           steps=STEPS)
    assert image.size == (24, 32)
    assert load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu").needs == ()
    renamed = truepose(source_pose=True, source_pose_key="pose_of_the_source")
    with pytest.raises(ValueError, match="pose_of_the_source"):
        renamed.generate(index.image_path(src), index.keypoints[tgt], source_parsing=index.parsing_path(src),
                         source_pose=index.keypoints[src], steps=STEPS)


def test_missing_source_pose_names_it_the_config_key_and_the_fix(tiny_ldm_checkpoints, index, pair, tmp_path, capsys):
    from pgpis.inference.inputs import MissingInputError

    src, tgt = pair
    pipe = load_pipeline(tiny_ldm_checkpoints["truepose"], device="cpu")
    with pytest.raises(MissingInputError) as err:  # estimation off: what the model reads must be given
        pipe.generate(index.image_path(src), index.keypoints[tgt], source_parsing=index.parsing_path(src), steps=STEPS,
                      source_estimator=None)
    assert [m.name for m in err.value.missing] == ["source_pose"]
    message = str(err.value)
    for part in ("source_pose", "model.init_args.denoiser.init_args.source_pose: true", "source_pose=", "--source-pose"):
        assert part in message, part
    assert [r.name for r in pipe.required_inputs] == list(pipe.needs)  # what an app shows input fields for
    kpt.write_pcdms_keypoints(tmp_path / "target.txt", kpt.cfld_to_pcdms_frame(index.keypoints[tgt]))
    assert generate_main(["--checkpoint", str(tiny_ldm_checkpoints["truepose"]), "--source", str(index.image_path(src)),
                          "--pose", str(tmp_path / "target.txt"), "--parsing", str(index.parsing_path(src)),
                          "--estimator", "none", "--out", str(tmp_path / "x.png"), "--steps", str(STEPS)]) == 2
    stderr = capsys.readouterr().err
    assert "source_pose" in stderr and "--source-pose" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "x.png").exists()


def test_shipped_truepose_generate_single_pairs_and_export(tiny_ldm_checkpoints, synthetic_root, tmp_path, index,
                                                           pair):
    """`pgpis generate` (one image and --pairs) and `pgpis export` + load_pipeline on experiments/tiny/truepose.yaml."""
    from pgpis.cli import main

    src, tgt = pair
    ckpt = str(tiny_ldm_checkpoints["truepose"])
    (tmp_path / "target.json").write_text(json.dumps(index.keypoints[tgt].tolist()))
    (tmp_path / "source.json").write_text(json.dumps(index.keypoints[src].tolist()))
    one = ["--source", str(index.image_path(src)), "--pose", str(tmp_path / "target.json"),
           "--parsing", str(index.parsing_path(src)), "--source-pose", str(tmp_path / "source.json"),
           "--steps", str(STEPS), "--seed", "4"]
    assert main(["generate", "--checkpoint", ckpt, *one, "--out", str(tmp_path / "one.png")]) == 0
    assert main(["export", ckpt, str(tmp_path / "export")]) == 0
    exported = load_pipeline(tmp_path / "export", device="cpu")
    assert exported.kind == "truepose" and exported.needs_source_pose
    assert main(["generate", "--checkpoint", str(tmp_path / "export"), *one, "--out", str(tmp_path / "two.png")]) == 0
    np.testing.assert_array_equal(_arr(Image.open(tmp_path / "one.png")), _arr(Image.open(tmp_path / "two.png")))
    api = exported.generate(index.image_path(src), index.keypoints[tgt], source_parsing=index.parsing_path(src),
                            source_pose=index.keypoints[src], steps=STEPS, seed=4)
    np.testing.assert_array_equal(_arr(api), _arr(Image.open(tmp_path / "one.png")))  # same inputs from files
    pairs = index.pairs["test"][:2]
    (tmp_path / "pairs.csv").write_text("from,to\n" + "".join(f"{s},{t}\n" for s, t in pairs))
    assert main(["generate", "--checkpoint", str(tmp_path / "export"), "--pairs", str(tmp_path / "pairs.csv"),
                 "--root", str(synthetic_root), "--out", str(tmp_path / "many"), "--steps", str(STEPS)]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(f"{stem(s)}_to_{stem(t)}.png" for s, t in pairs)
