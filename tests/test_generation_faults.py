"""Generation under faults (issue 19 item 4): a split killed midway resumes without duplicates, the same images.

`pgpis generate --pairs` is SIGKILLed in a subprocess in the middle of writing a file; `DDIMInference` is
interrupted in-process by an exception from the PNG encoder mid-write. On the re-run valid files are kept
untouched (inode and mtime), a truncated PNG (as left by a crash or an older non-atomic writer) is
regenerated, missing files are generated, and the final folder equals an uninterrupted run's byte for byte.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.callbacks import DDIMInference
from pgpis.diffusion import ClassifierFreeGuidance
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.commands.generate import generate_main
from pgpis.metrics.pairs import generated_name
from pgpis.errors import DataFormatError
from pgpis.output_files import (TEMP_INFIX, image_damage, read_settings, settings_change, settings_file, write_image,
                                write_settings)
from test_callbacks import _model, _trainer
from test_diffusion_helpers import RandomPairsDataModule

STEPS = 2

# Runs `pgpis generate` and SIGKILLs itself halfway through encoding PNG number N+1 (0-based N): the temp file
# holds half a PNG, as after a kill during the write. No Python cleanup runs after SIGKILL.
KILL_AFTER = """
import io, os, signal, sys
from PIL import Image
n, real, done = int(sys.argv[1]), Image.Image.save, [0]
def save(self, fp, *args, **kwargs):
    if done[0] == n:
        buf = io.BytesIO()
        real(self, buf, *args, **kwargs)
        fp.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fp.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(self, fp, *args, **kwargs)
    done[0] += 1
Image.Image.save = save
from pgpis.cli import main
sys.exit(main(["generate", *sys.argv[2:]]))
"""


def _pngs(folder: Path) -> dict[str, bytes]:
    """The images, after checking that the folder holds nothing else (no temp files)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert not [n for n in files if n.startswith(".") or not n.endswith(".png")], files
    return files


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_write_image_is_atomic_and_damage_is_named(tmp_path):
    img = Image.fromarray(np.arange(32 * 24 * 3, dtype=np.uint8).reshape(32, 24, 3))
    path = write_image(img, tmp_path / "a.png")
    assert image_damage(path) is None and image_damage(path, size=(32, 24)) is None
    assert image_damage(path, size=(64, 48)) == "24x32 px, expected 48x64"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temp file left

    class Boom(Exception):
        pass

    def failing_save(*_, **__):
        raise Boom

    img.save = failing_save  # the encoder fails mid-write: the old file stays, no temp is left behind
    with pytest.raises(Boom):
        write_image(img, path)
    assert image_damage(path) is None and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    _truncate(path)
    assert image_damage(path).startswith("unreadable (")
    path.write_bytes(b"")
    assert image_damage(path).startswith("unreadable (UnidentifiedImageError")
    path.write_bytes(b"not a png at all")
    assert image_damage(path).startswith("unreadable (")
    Image.Image.save(img, tmp_path / "b.png", format="JPEG")  # the class method: the instance's was replaced
    assert image_damage(tmp_path / "b.png") == "a JPEG file named .png, expected PNG"

    folder = tmp_path / "gen"
    settings = {"seed": 1, "guidance": [2.0, 2.0]}
    assert settings_change(read_settings(folder), settings) is None  # no record yet
    write_settings(folder, settings)
    assert settings_change(read_settings(folder), settings) is None
    assert settings_change(read_settings(folder), {**settings, "seed": 2}) == "seed: 1 -> 2"
    settings_file(folder).write_text("{not json")
    assert "unreadable (JSONDecodeError)" in settings_change(read_settings(folder), settings)


def test_pgpis_generate_pairs_killed_mid_split_resumes_to_the_same_images(tiny_ldm_checkpoints, synthetic_root,
                                                                          tmp_path, capsys):
    pairs = read_deepfashion_index(synthetic_root).pairs["test"][:5]
    rows = pairs + [pairs[0]]  # the first pair listed again: one file, written once from its first listing
    (tmp_path / "pairs.csv").write_text("from,to\n" + "".join(f"{s},{t}\n" for s, t in rows))
    names = [generated_name(s, t) for s, t in pairs]
    args = ["--checkpoint", str(tiny_ldm_checkpoints["truepose"]), "--pairs", str(tmp_path / "pairs.csv"),
            "--root", str(synthetic_root), "--steps", str(STEPS), "--batch-size", "2", "--seed", "4"]

    ref = tmp_path / "ref"
    assert generate_main([*args, "--out", str(ref)]) == 0  # uninterrupted
    assert sorted(_pngs(ref)) == sorted(names)
    assert "0 kept, 0 regenerated, 5 generated, 1 duplicate pairs" in capsys.readouterr().out

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER, "4", *args, "--out", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    left = sorted(p.name for p in out.iterdir())
    assert [n for n in left if not n.startswith(".")] == sorted(names[:4])  # no half file under a final name
    assert len(left) == 5 and left[0].startswith(f".{names[4]}{TEMP_INFIX}")  # the killed write's temp file
    assert settings_file(out).is_file()  # written before the first image
    assert all(image_damage(out / n) is None for n in names[:4])

    (out / names[3]).unlink()  # deleted
    _truncate(out / names[0])  # as a crash of a non-atomic writer leaves it
    kept = {n: _stamp(out / n) for n in (names[1], names[2])}
    settings_file(out).unlink()  # as in a folder from a pgpis without the record: valid files kept, and said so
    assert generate_main([*args, "--out", str(out)]) == 0
    log, err = capsys.readouterr()
    assert "no record of the settings" in err
    assert "2 kept, 1 regenerated, 2 generated, 1 duplicate pairs" in log and "1 stale temp files removed" in log
    assert f"regenerated {names[0]} (pair 0): unreadable (" in log
    assert {n: _stamp(out / n) for n in kept} == kept  # kept files untouched: same inode, same mtime
    assert _pngs(out) == _pngs(ref)  # nothing else (no temp file, no duplicate), the same bytes as uninterrupted

    assert generate_main([*args, "--out", str(out)]) == 0  # complete: nothing to generate
    assert "5 kept, 0 regenerated, 0 generated" in capsys.readouterr().out
    with pytest.raises(DataFormatError, match=r'other settings \(seed: 4 -> 5\).*--overwrite'):
        generate_main([*args[:-1], "5", "--out", str(out)])  # another seed would mix two runs' images: refused
    assert generate_main([*args[:-1], "5", "--out", str(out), "--overwrite"]) == 0
    assert "0 kept, 5 regenerated, 0 generated" in capsys.readouterr().out
    assert sorted(_pngs(out)) == sorted(names) and _pngs(out) != _pngs(ref)


def test_ddim_inference_interrupted_mid_split_resumes_to_the_same_images(tmp_path, monkeypatch):
    def callback(out: Path) -> DDIMInference:
        return DDIMInference(output_dir=str(out), batch_size=2, metrics_path=str(out.parent / f"{out.name}.json"),
                             grid_path=None)

    names = [f"src{i}_to_tgt{i}.png" for i in range(5)]
    ref = tmp_path / "ref"
    _trainer(tmp_path, [callback(ref)]).test(_model(), RandomPairsDataModule())
    assert sorted(_pngs(ref)) == names

    class Killed(Exception):
        pass

    real, done = Image.Image.save, [0]

    def save(self, fp, *args, **kwargs):  # the 4th PNG: half of it written, then the run dies
        if done[0] == 3:
            buf = io.BytesIO()
            real(self, buf, *args, **kwargs)
            fp.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise Killed
        real(self, fp, *args, **kwargs)
        done[0] += 1

    out = tmp_path / "out"
    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(Killed):
        _trainer(tmp_path, [callback(out)]).test(_model(), RandomPairsDataModule())
    monkeypatch.undo()
    assert sorted(_pngs(out)) == names[:3]  # the failed write left neither a half file nor a temp
    (out / f".{names[4]}{TEMP_INFIX}deadbeef").write_bytes(b"\x89PNG")  # a SIGKILLed write's temp file
    _truncate(out / names[1])
    kept = _stamp(out / names[0])

    cb = callback(out)
    _trainer(tmp_path, [cb]).test(_model(), RandomPairsDataModule())
    assert cb.results["files"] == {"kept": 2, "regenerated": 1, "generated": 2, "duplicates": 0}
    assert cb.plan.stale_temps == 1
    assert _stamp(out / names[0]) == kept
    assert _pngs(out) == _pngs(ref)
    metrics = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("ref", "out")}
    assert metrics["ref"]["files"] == {"kept": 0, "regenerated": 0, "generated": 5, "duplicates": 0}
    assert metrics["out"].pop("files") != metrics["ref"].pop("files") and metrics["out"] == metrics["ref"]

    cb = callback(out)  # other guidance: the files are another run's, so all are regenerated (with a warning)
    cb.guidance = ClassifierFreeGuidance(3.0)
    with pytest.warns(UserWarning, match="other settings .*guidance"):
        _trainer(tmp_path, [cb]).test(_model(), RandomPairsDataModule())
    assert cb.results["files"] == {"kept": 0, "regenerated": 5, "generated": 0, "duplicates": 0}
    assert sorted(_pngs(out)) == names and _pngs(out) != _pngs(ref)


@pytest.mark.slow
def test_ddim_inference_resumes_under_ddp_with_a_single_process_runs_images(tmp_path):
    """`pgpis test` on 2 gloo processes resumes a damaged folder to exactly what one process wrote (same checkpoint)."""
    import shutil

    import yaml

    from pgpis.cli import main
    from test_diffusion_cli import TESTS_DIR, _config

    (tmp_path / "fit").mkdir()
    main(["fit", "--config", str(_config(tmp_path / "fit", 1))])
    ckpt = tmp_path / "fit" / "ckpt" / "last.ckpt"

    def config(out: Path, devices: int) -> Path:
        cb = {"class_path": "pgpis.callbacks.DDIMInference",
              "init_args": {"output_dir": str(out), "batch_size": 2, "grid_path": None,
                            "metrics_path": str(out.parent / f"{out.name}.json")}}
        out.parent.mkdir()
        path = _config(out.parent, 1, [cb])
        data = yaml.safe_load(path.read_text())
        data["trainer"].update({"devices": devices, **({"strategy": "ddp"} if devices > 1 else {})})
        path.write_text(yaml.safe_dump(data))
        return path

    ref = tmp_path / "ref" / "gen"
    main(["test", "--config", str(config(ref, 1)), "--ckpt_path", str(ckpt)])
    names = [f"src{i}_to_tgt{i}.png" for i in range(5)]
    assert sorted(_pngs(ref)) == names
    out = tmp_path / "ddp" / "gen"
    cfg = config(out, 2)
    shutil.copytree(ref, out)
    # batches [0,1] [4] are rank 0's, [2,3] rank 1's: damage on both ranks, a stale temp of each writer version
    _truncate(out / names[2])
    (out / names[4]).unlink()
    (out / f".{names[0]}{TEMP_INFIX}abcd1234").write_bytes(b"")
    (out / f"{names[3]}.tmp").write_bytes(b"")
    kept = {n: _stamp(out / n) for n in (names[0], names[1], names[3])}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pgpis.cli", "test", "--config", str(cfg), "--ckpt_path", str(ckpt)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 kept, 1 regenerated (damaged or overwrite), 1 generated" in proc.stdout + proc.stderr
    assert {n: _stamp(out / n) for n in kept} == kept
    assert _pngs(out) == _pngs(ref)
    metrics = {run: json.loads((tmp_path / run / "gen.json").read_text()) for run in ("ref", "ddp")}
    assert metrics["ddp"].pop("files") == {"kept": 3, "regenerated": 1, "generated": 1, "duplicates": 0}
    metrics["ref"].pop("files")
    assert metrics["ddp"] == metrics["ref"]  # scored on 2 ranks: the single-process numbers
