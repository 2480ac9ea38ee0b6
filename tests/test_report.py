"""`pgpis report` reads the stages' metrics files and never invents numbers."""
import json

from pgpis.cli import main as pgpis_main


def test_report_tables_and_missing_stages(tmp_path, capsys):
    out = tmp_path / "demo" / "report.md"
    assert pgpis_main(["report", "--outputs", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Not run (`make train-ipf`)" in text and "Not run (`make train-ldm`)" in text

    (tmp_path / "ipf").mkdir()
    row = {"R@1": 0.5, "R@3": 0.8, "R@5": 0.9, "mean_rank": 2.5, "source_top1": 0.1}
    (tmp_path / "ipf" / "metrics.json").write_text(json.dumps({"A1": row, "source_enhanced": row}))
    (tmp_path / "ldm").mkdir()
    (tmp_path / "ldm" / "grid.png").write_bytes(b"")
    scores = {"ssim": 0.81234, "psnr": 20.5, "fg_psnr": 17.0}
    (tmp_path / "ldm" / "metrics.json").write_text(json.dumps({"samples": scores, "copy_source": scores, "grid": "grid.png"}))
    assert pgpis_main(["report", "--outputs", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| A3: source-enhanced loss | 0.500 | 0.800 | 0.900 | 2.500 | 0.100 |" in text
    assert "A2: baseline loss" not in text  # not run, so no row
    assert "0.812" in text and "](../ldm/grid.png)" in text


def test_report_flags_results_older_than_the_demo(tmp_path):
    import os
    import time

    scores = {"ssim": 0.5, "psnr": 18.0, "fg_psnr": 12.0}
    for sub in ("ldm", "truepose"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "metrics.json").write_text(json.dumps({"samples": scores, "copy_source": scores}))
    old = time.time() - 3600
    os.utime(tmp_path / "truepose" / "metrics.json", (old, old))
    started = tmp_path / ".started"
    started.write_text(str(time.time() - 60))
    out = tmp_path / "report.md"
    assert pgpis_main(["report", "--outputs", str(tmp_path), "--out", str(out), "--started", str(started)]) == 0
    text = out.read_text()
    assert "the TruePose column comes from an earlier run" in text and "`make train-truepose` refreshes it" in text
    assert "the FPDM column comes from an earlier run" not in text
