"""The feature store (pgpis.store): `pgpis data cache` writes it, `pgpis fit --store` trains from it.

Exactness on the CPU in fp32: a training step's loss and gradients from the store equal the online step's
(TruePose's latents alone, the lossless first stage's: bitwise; FPDM's DINOv2 tokens and fusion embeddings
and TruePose's CLIP embeddings, computed in other batches: within 1e-6), with the same trainable weights and
the same batch. The store's frozen networks are not built in training.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from pgpis.store import read_manifest

TINY = Path(__file__).resolve().parents[1] / "experiments" / "tiny"


def _overlay(tmp: Path, root: Path, fusion_model: Path | None, **data) -> Path:
    model = {"init_args": {"denoiser": {"init_args": {"fusion_model": str(fusion_model)}}}} if fusion_model else {}
    cfg = {"model": model,
           "data": {"init_args": {"root": str(root), "batch_size": 4, "eval_batch_size": 4, "num_workers": 0,
                                  "persistent_workers": False, "val_identities": 2, "max_eval_pairs": 4, **data}},
           "trainer": {"max_steps": 1, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                       "limit_val_batches": 0, "default_root_dir": str(tmp / "run"), "callbacks": []}}
    path = tmp / f"overlay-{len(list(tmp.glob('overlay-*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg if model else {k: v for k, v in cfg.items() if k != "model"}))
    return path


def _args(config: str, overlay: Path) -> list[str]:
    return ["--config", str(TINY / config), "--config", str(overlay)]


def _cache(args: list[str], out: Path, *extra: str) -> int:
    from pgpis.cli import main

    return main(["data", "cache", *args, "--out", str(out), "--batch-size", "64", *extra])


def _step(cli, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training step's loss and gradients (the core's diffusion loss under a fixed generator)."""
    model = cli.model.train()
    model.zero_grad()
    loss = model.diffusion_loss(batch, generator=torch.Generator().manual_seed(123))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _same_weights(online, stored) -> None:
    missing, unexpected = stored.model.load_state_dict(online.model.state_dict(), strict=False)
    assert not missing, missing
    frozen = ("denoiser.source_encoder.", "denoiser.fusion_encoder.", "denoiser.clip.")
    assert all(k.startswith(frozen) for k in unexpected), unexpected


@pytest.fixture(scope="module")
def fusion_export(tmp_path_factory) -> Path:
    from inference_fixtures import write_fusion_export

    return write_fusion_export(tmp_path_factory.mktemp("ipf") / "fusion_model")


@pytest.fixture(scope="module")
def fpdm(tmp_path_factory, synthetic_root, fusion_export) -> dict:
    tmp = tmp_path_factory.mktemp("store_fpdm")
    args = _args("fpdm.yaml", _overlay(tmp, synthetic_root, fusion_export))
    assert _cache(args, tmp / "store") == 0
    return {"tmp": tmp, "args": args, "store": tmp / "store"}


def test_fpdm_step_from_the_store_equals_the_online_step(fpdm):
    from pgpis.commands.data_cache import build_run
    from pgpis.store.lazy import LazyFrozen

    manifest = read_manifest(fpdm["store"])
    assert set(manifest.parts) == {"latents", "dino", "fusion"}
    assert manifest.parts["dino"].count == 2 * len(manifest.data["images"])  # both flips of every training image

    online = build_run(fpdm["args"])
    stored = build_run([*fpdm["args"], "--store", str(fpdm["store"])])
    den = stored.model.denoiser
    assert isinstance(den.source_encoder, LazyFrozen) and isinstance(den.fusion_encoder, LazyFrozen)
    _same_weights(online, stored)

    encodes = []
    fs = stored.model.first_stage
    fs.encode = lambda x, _orig=fs.encode: encodes.append(1) or _orig(x)
    b_online = next(iter(online.datamodule.train_dataloader()))
    b_stored = next(iter(stored.datamodule.train_dataloader()))
    assert b_online["source_name"] == b_stored["source_name"] and b_online["target_name"] == b_stored["target_name"]
    assert {"stored/dino", "stored/fusion", "stored/latents/target"} <= set(b_stored)
    # the encoder views only DINOv2 and the IPF model read are not even loaded from the store
    views = {"dino_source", "dino_target", "clip_source", "clip_target", "clip_target_pose"}
    assert views <= set(b_online) and not views & set(b_stored)
    assert torch.equal(b_stored["stored/latents/target"], online.model.first_stage.encode(b_online["target"]))

    loss_a, grads_a = _step(online, b_online)
    loss_b, grads_b = _step(stored, b_stored)
    assert not den.source_encoder.built and not den.fusion_encoder.built and not encodes  # never built, never ran
    assert grads_a.keys() == grads_b.keys()
    worst = max(float((grads_a[k] - grads_b[k]).abs().max()) for k in grads_a)
    print(f"FPDM: loss online {loss_a.item():.9f} store {loss_b.item():.9f} |diff| "
          f"{abs(loss_a - loss_b).item():.3g}; max |grad diff| {worst:.3g} over {len(grads_a)} tensors")
    assert abs(loss_a - loss_b).item() <= 1e-6
    assert worst <= 1e-6


@pytest.mark.slow
def test_fit_from_the_store_builds_no_frozen_network_and_sampling_builds_the_stored_one(fpdm):
    from pgpis.commands.data_cache import build_run

    stored = build_run([*fpdm["args"], "--store", str(fpdm["store"])])
    den = stored.model.denoiser
    encodes = []
    fs = stored.model.first_stage
    fs.encode = lambda x, _orig=fs.encode: encodes.append(1) or _orig(x)
    stored.trainer.fit(stored.model, datamodule=stored.datamodule)
    assert stored.trainer.global_step == 1
    assert not den.source_encoder.built and not den.fusion_encoder.built and not encodes

    # sampling stays online: the first batch without stored tensors builds DINOv2 with the store's weights
    from pgpis.store.manifest import state_digest

    batch = next(iter(stored.datamodule.val_dataloader()))
    out = stored.model.eval().generate(batch)
    assert out.shape == batch["target"].shape and den.source_encoder.built
    assert state_digest(den.source_encoder.module) == read_manifest(fpdm["store"]).parts["dino"].weights_digest


def test_a_checkpoint_trained_from_a_store_samples_without_it_and_resumes_with_it(fpdm, tmp_path):
    import shutil

    from pgpis.inference.checkpoint import module_from_checkpoint
    from pgpis.store.checkpoint import FROZEN_FROM_STORE
    from pgpis.commands.data_cache import build_run
    from pgpis.store.manifest import state_digest

    store = tmp_path / "store"
    shutil.copytree(fpdm["store"], store)
    run = build_run([*fpdm["args"], "--store", str(store), "--trainer.default_root_dir", str(tmp_path / "run")])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    ckpt = tmp_path / "store_run.ckpt"
    run.trainer.save_checkpoint(ckpt)  # what ModelCheckpoint writes (the same dump and hooks)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved[FROZEN_FROM_STORE] == {"denoiser.source_encoder.": "dino", "denoiser.fusion_encoder.": "fusion"}
    assert any(k.startswith("denoiser.source_encoder.") for k in saved["state_dict"])
    assert not run.model.denoiser.source_encoder.built  # written from the store's weights file, never built

    # resuming the store run reads the frozen parts from the store again (the embedded keys are not loaded)
    again = build_run([*fpdm["args"], "--store", str(store), "--trainer.default_root_dir", str(tmp_path / "run2"),
                       "--trainer.max_steps", "2"])
    again.trainer.fit(again.model, datamodule=again.datamodule, ckpt_path=str(ckpt))
    assert again.trainer.global_step == 2 and not again.model.denoiser.source_encoder.built

    # a stranger with the checkpoint and no store: the online model, every weight from the file
    shutil.rmtree(store)
    module, config, _, _ = module_from_checkpoint(ckpt)
    assert config["denoiser"]["init_args"]["store"] is None
    manifest = read_manifest(fpdm["store"])
    assert state_digest(module.denoiser.source_encoder) == manifest.parts["dino"].weights_digest
    assert state_digest(module.denoiser.fusion_encoder) == manifest.parts["fusion"].weights_digest
    batch = next(iter(run.datamodule.val_dataloader()))
    assert module.generate(batch).shape == batch["target"].shape

    # an older checkpoint without the embedded weights names the store it needs
    del saved[FROZEN_FROM_STORE]
    torch.save(saved, tmp_path / "old.ckpt")
    with pytest.raises(FileNotFoundError, match="feature store the checkpoint was trained from"):
        module_from_checkpoint(tmp_path / "old.ckpt")


def test_a_store_that_does_not_match_refuses_to_train_and_names_what_differs(fpdm, synthetic_root, fusion_export,
                                                                             tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    from pgpis.cli import main

    other = tmp_path / "other_ipf"
    shutil.copytree(fusion_export, other)
    weights = load_file(str(other / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1.0
    save_file(weights, str(other / "model.safetensors"))
    bad = _overlay(tmp_path, synthetic_root, other, image_size=[64, 48])
    code = main(["fit", *_args("fpdm.yaml", bad), "--store", str(fpdm["store"]),
                 "--model.init_args.denoiser.init_args.source_encoder.size", "[48, 48]"])
    err = capsys.readouterr().err
    assert code != 0
    assert "weights digest of fusion differs: store " in err
    assert "config of dino differs at dino.source_encoder.size: store [32, 32] vs model [48, 48]" in err
    assert "data image_size differs: store [32, 24] vs run [64, 48]" in err
    assert "re-run `pgpis data cache" in " ".join(err.split())

    assert main(["fit", *_args("fpdm.yaml", bad), "--store", str(tmp_path / "nowhere")]) != 0
    assert "is not a feature store" in " ".join(capsys.readouterr().err.split())


def test_truepose_step_from_stored_latents_is_bitwise_the_online_step(tmp_path, synthetic_root):
    from pgpis.commands.data_cache import build_run

    args = _args("truepose.yaml", _overlay(tmp_path, synthetic_root, None, flip_prob=0.5))
    assert _cache(args, tmp_path / "store", "--parts", "latents") == 0
    assert set(read_manifest(tmp_path / "store").parts) == {"latents"}
    online, stored = build_run(args), build_run([*args, "--store", str(tmp_path / "store")])
    _same_weights(online, stored)
    fs = stored.model.first_stage
    encodes = []
    fs.encode = lambda x, _orig=fs.encode: encodes.append(1) or _orig(x)
    b_online = next(iter(online.datamodule.train_dataloader()))
    b_stored = next(iter(stored.datamodule.train_dataloader()))
    loss_a, grads_a = _step(online, b_online)
    loss_b, grads_b = _step(stored, b_stored)
    assert not encodes  # neither the target's nor SourceNet's source latent was encoded
    print(f"TruePose: loss online {loss_a.item():.9f} store {loss_b.item():.9f}; {len(grads_a)} gradient tensors")
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)


def test_truepose_from_the_whole_store_never_builds_clip_and_matches_the_online_step(tmp_path, synthetic_root):
    from pgpis.commands.data_cache import build_run
    from pgpis.store.lazy import LazyFrozen

    args = _args("truepose.yaml", _overlay(tmp_path, synthetic_root, None, flip_prob=0.5))
    assert _cache(args, tmp_path / "trainable", "--parts", "latents,clip") != 0  # the tiny preset trains its CLIP
    frozen = tmp_path / "frozen_clip.yaml"
    frozen.write_text(yaml.safe_dump({"model": {"init_args": {"denoiser": {"init_args": {
        "clip_encoder": {"backend": "clip", "preset": "tiny-32", "trainable": False}}}}}}))
    args += ["--config", str(frozen)]
    assert _cache(args, tmp_path / "store") == 0
    manifest = read_manifest(tmp_path / "store")
    assert set(manifest.parts) == {"latents", "clip"}
    with pytest.raises(Exception, match="CLIP is trainable"):  # a store of a frozen CLIP, a run that trains it
        build_run([*args[:-2], "--store", str(tmp_path / "store")])
    online, stored = build_run(args), build_run([*args, "--store", str(tmp_path / "store")])
    regions = online.model.denoiser.label_set.num_classes
    assert manifest.parts["clip"].shape == [1 + regions, online.model.denoiser.clip.embed_dim]
    den = stored.model.denoiser
    assert isinstance(den.clip, LazyFrozen)
    _same_weights(online, stored)
    b_online = next(iter(online.datamodule.train_dataloader()))
    b_stored = next(iter(stored.datamodule.train_dataloader()))
    assert b_stored["stored/clip"].shape == (b_online["source"].shape[0], 1 + regions, den.image_proj.in_features)
    loss_a, grads_a = _step(online, b_online)
    loss_b, grads_b = _step(stored, b_stored)
    assert not den.clip.built  # training never built CLIP
    worst = max(float((grads_a[k] - grads_b[k]).abs().max()) for k in grads_a)
    print(f"TruePose (latents + clip): loss online {loss_a.item():.9f} store {loss_b.item():.9f} |diff| "
          f"{abs(loss_a - loss_b).item():.3g}; max |grad diff| {worst:.3g} over {len(grads_a)} tensors")
    assert grads_a.keys() == grads_b.keys()
    assert abs(loss_a - loss_b).item() <= 1e-6 and worst <= 1e-6

    # sampling stays online: the first batch without stored tensors builds CLIP from the store's weights
    den.eval()
    with torch.no_grad():
        cond = den.encode_conditions({k: v for k, v in b_online.items() if not k.startswith("stored/")})
    assert den.clip.built
    ref = online.model.denoiser.eval().encode_conditions(b_online)
    assert torch.allclose(cond["clip_tokens"], ref["clip_tokens"], atol=1e-6)


def test_an_augmentation_that_cannot_be_enumerated_is_refused_by_name(tmp_path, synthetic_root, fusion_export, capsys):
    args = _args("fpdm.yaml", _overlay(tmp_path, synthetic_root, fusion_export, keypoint_jitter=2.0))
    assert _cache(args, tmp_path / "s", "--dry-run") != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot store part 'fusion': data.init_args.keypoint_jitter = 2.0 moves the target pose" in err
    # the jitter moves the pose image only: the source views stay valid, so these parts can be stored
    assert _cache(args, tmp_path / "s", "--dry-run", "--parts", "latents,dino") == 0
    table = capsys.readouterr().out
    assert "dino" in table and "latents" in table and "total" in table
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_cache_shards_over_ranks_and_bf16_is_measured(tmp_path, synthetic_root, fusion_export, monkeypatch, capsys):
    from pgpis.store.reader import StoreReader

    args = _args("fpdm.yaml", _overlay(tmp_path, synthetic_root, fusion_export))
    assert _cache(args, tmp_path / "one", "--parts", "dino,clip") != 0
    assert "this model can store latents,dino,fusion" in " ".join(capsys.readouterr().err.split())
    assert _cache(args, tmp_path / "one", "--parts", "dino") == 0
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert _cache(args, tmp_path / "two", "--parts", "dino", "--dtype", "bf16") == 0
        assert (tmp_path / "two" / "manifest.json").is_file() == (rank == 1)  # the last rank done writes it
    one, two = StoreReader(tmp_path / "one"), StoreReader(tmp_path / "two")
    assert len(two.manifest.parts["dino"].shards) == 2 and two.keys("dino") == one.keys("dino")
    worst = max(float((one.get("dino", k) - two.get("dino", k)).abs().max()) for k in one.keys("dino"))
    rounding = json.loads((tmp_path / "two" / "manifest.json").read_text())["data"]["rounding"]["dino"]
    print(f"dino tokens bf16 vs fp32: max |diff| {worst:.3g}; rank 0 measured {rounding}")
    scale = max(float(one.get("dino", k).abs().max()) for k in one.keys("dino"))
    assert 0 < worst <= scale * 2 ** -8


def test_only_views_that_no_online_network_reads_are_skipped():
    from pgpis.store.parts import replaced_encoder_views

    class Den:
        def store_identity(self):
            return {"dino": {"config": {"source_key": "dino_source"}},
                    "fusion": {"config": {"fusion_keys": ["clip_source", "clip_target_pose"]}}}

    encoders = {"dino": (32, 32), "clip": (64, 64)}
    assert replaced_encoder_views(Den(), ["latents", "dino", "fusion"], encoders) == {"dino", "clip"}
    assert replaced_encoder_views(Den(), ["latents", "dino"], encoders) == {"dino"}  # the IPF model still runs
    assert replaced_encoder_views(Den(), ["latents"], encoders) == set()
