"""Every `outputs/...` path the README and docs/ give is one the demo runs write (or read), so a reader can paste it.

What the runs write is taken from the runs themselves, not from the docs: the Makefile recipes of the demo targets
as `make -n` prints them (the commands `make demo-all`, `make train-ldm DATASET=phoenix`, ... would run), and the
config of every `pgpis fit` / `pgpis test` among them, resolved by pgpis's own command-line parser
(`--print_config`): its output paths, and the checkpoint folder Lightning derives from its logger.
"""
from __future__ import annotations

import contextlib
import fnmatch
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: the make targets whose outputs the docs describe (the demo, its parts, the paper presets' runs, Phoenix)
TARGETS = [["demo-all"], ["notebooks"], ["evaluate"], ["app"], ["train-ldm", "DATASET=phoenix"],
           ["train-ipf", "CONFIG=experiments/deepfashion/ipf.yaml"],
           ["train-truepose", "CONFIG=experiments/deepfashion/truepose.yaml"]]
#: runs the docs give that no make target wraps: the WPose overlay on the tiny and the paper TruePose (docs/wpose.md)
DOC_RUNS = [["test", "--config", "experiments/tiny/truepose.yaml", "--config", "experiments/wpose/test.yaml"],
            ["test", "--config", "experiments/deepfashion/truepose.yaml", "--config", "experiments/wpose/test.yaml"],
            ["fit", "--config", "examples/concat_ldm/tiny.yaml"]]  # docs/extending.md, with PYTHONPATH=examples
#: a path right after one of these is a destination the reader picks (`make train-ldm STORE=DIR`, `--out DIR`, a
#: callback's output overridden on the command line), not a demo output
CHOSEN_BY_READER = re.compile(r"((STORE|PGPIS_SCREENSHOT_DIR)=|(--out|--trainer\.callbacks\.(output_dir|metrics_path)) )$")
PATH = re.compile(r"outputs/[\w./{},*-]*")
#: values that name folders whose every file the run writes (samples, an export, a checkpoint folder)
FOLDER_KEYS = {"output_dir", "export_dir", "dirpath"}


def _make_commands(target: list[str]) -> str:
    """What `make -n TARGET` prints: the commands, sub-makes included (make runs $(MAKE) lines with -n too)."""
    done = subprocess.run(["make", "-n", "--no-print-directory", *target], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"make -n {' '.join(target)}:\n{done.stderr}"
    return done.stdout.replace("\\\n", " ")


def _pgpis_runs(commands: str) -> list[list[str]]:
    """The `pgpis fit|test ...` command lines among `commands`, without --ckpt_path (a file the run reads)."""
    runs = []
    for line in commands.splitlines():
        words = shlex.split(line) if re.search(r"pgpis (fit|test) ", line) else []
        if len(words) > 1 and words[0].endswith("pgpis"):
            args = words[1:]
            while "--ckpt_path" in args:
                i = args.index("--ckpt_path")
                del args[i:i + 2]
            runs.append(args)
    return runs


def _resolved_config(args: list[str]) -> dict:
    from pgpis.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([*args, "--print_config"])
    assert done.value.code in (0, None), f"pgpis {' '.join(args)} --print_config failed"
    return yaml.safe_load(out.getvalue())


def _config_outputs(config: dict) -> tuple[set[str], set[str]]:
    """(files, folders) a run of `config` writes or reads under outputs/: every such value, plus last.ckpt in the
    folder Lightning's ModelCheckpoint uses without a dirpath (the logger's log_dir/checkpoints)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    files, folders = set(), set()

    def walk(node, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and node.startswith("outputs/"):
            (folders if key in FOLDER_KEYS else files).add(node.rstrip("/"))

    walk(config)
    trainer = config.get("trainer") or {}
    logger = trainer.get("logger") or {}
    saves_last = any((c.get("init_args") or {}).get("save_last") and not (c.get("init_args") or {}).get("dirpath")
                     for c in trainer.get("callbacks") or [] if isinstance(c, dict))
    if saves_last and "TensorBoardLogger" in str(logger.get("class_path", "")):
        init = logger["init_args"]
        log_dir = TensorBoardLogger(init["save_dir"], name=init.get("name"), version=init.get("version")).log_dir
        files.add(str(Path(log_dir) / "checkpoints" / "last.ckpt"))
    return files, folders


@pytest.fixture(scope="module")
def written() -> tuple[set[str], set[str]]:
    if shutil.which("make") is None:
        pytest.fail("this test reads the Makefile's recipes with `make -n`: install make")
    files, folders = set(), set()
    runs = [*DOC_RUNS]
    sys.path.insert(0, str(REPO / "examples"))  # the example method's class path (docs/extending.md)
    for target in TARGETS:
        commands = _make_commands(target)
        files |= {p.rstrip("/") for p in PATH.findall(commands)}
        runs += _pgpis_runs(commands)
    for args in {tuple(r) for r in runs}:
        f, d = _config_outputs(_resolved_config(list(args)))
        files |= f
        folders |= d
    sys.path.remove(str(REPO / "examples"))
    return files, folders


def _expand(path: str) -> list[str]:
    """`outputs/{ipf,ldm}_phoenix` -> both; `outputs/ldm/{metrics.json` (a brace cut by the regex) -> the stem."""
    m = re.search(r"\{([^{}]*)\}", path)
    if m:
        return [e for alt in m.group(1).split(",") for e in _expand(path[:m.start()] + alt + path[m.end():])]
    return [path.split("{")[0].rstrip("/") if "{" in path else path.rstrip("/.,")]


def _known(path: str, files: set[str], folders: set[str]) -> bool:
    named = files | folders
    pattern = path.replace("...", "*")
    if "*" in pattern:  # `outputs/.../last.ckpt`, `outputs/wpose/samples/*.png`
        head = pattern.split("*")[0].rstrip("/")
        return any(fnmatch.fnmatch(w, pattern) for w in named) or any(head == d or head.startswith(d + "/")
                                                                      for d in folders)
    return (path in named or any(w.startswith(path + "/") for w in named)  # a folder the runs write into
            or any(path.startswith(d + "/") for d in folders))  # a file in a folder a run fills


def _doc_paths() -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        for lineno, line in enumerate(doc.read_text().splitlines(), start=1):
            for m in PATH.finditer(line):
                if CHOSEN_BY_READER.search(line[:m.start()]):
                    continue
                found += [(doc.relative_to(REPO).as_posix(), lineno, p) for p in _expand(m.group(0)) if p != "outputs"]
    return found


def test_docs_name_only_outputs_the_runs_write(written):
    files, folders = written
    assert "outputs/ldm/tiny_fpdm/checkpoints/last.ckpt" in files  # the derivation finds the demo's checkpoint
    paths = _doc_paths()
    assert len(paths) > 20
    unknown = [f"{doc}:{line}: {path}" for doc, line, path in paths if not _known(path, files, folders)]
    assert not unknown, ("paths the docs give that no demo run writes (fix the doc, or the Makefile/config):\n  "
                         + "\n  ".join(unknown))


def test_a_wrong_checkpoint_path_is_caught(written):
    """The check is not a tautology: the paths the docs used to give are refused."""
    files, folders = written
    for wrong in ("outputs/ldm/checkpoints/last.ckpt", "outputs/truepose/checkpoints/last.ckpt"):
        assert not _known(wrong, files, folders)
