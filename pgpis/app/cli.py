"""`pgpis app --checkpoint CKPT [--root DIR] [--host H] [--port P]`: load the model, read the test split, serve."""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

from pgpis.errors import DataFormatError, PgpisError, Problem
from pgpis.inference.hub import REVISION_HELP
from pgpis.parsing.options import add_parser_arguments
from pgpis.pose.options import add_estimator_arguments
from pgpis.safe_load import TRUST_HELP


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pgpis app",
        description="Interactive demo: pick or upload a source person, pick or upload a target pose, set guidance, "
                    "steps and seed, and generate. Serves a Gradio page on HOST:PORT (CPU, or CUDA when present).")
    p.add_argument("--checkpoint", required=True, help="`pgpis fit` checkpoint (.ckpt), `pgpis export` folder or its "
                                                       "hub id ORG/NAME")
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("--root", default=None, help="DeepFashion copy to pick test sources and poses from (default: the "
                                                "checkpoint's data.root; without one, uploads only)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--fusion-model", default=None, help="FPDM checkpoints: the IPF export folder if it moved")
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    add_estimator_arguments(p, used_by="'Pose from a photo' and an uploaded source's keypoints",
                            also=", or none to switch the choice off")
    add_parser_arguments(p, used_by="an uploaded source's parsing map, for models that read it (TruePose)",
                         also=", or none to ask for the map")
    p.add_argument("--max-choices", type=int, default=200, help="at most this many test sources / poses in the lists")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="instead of serving until Ctrl+C: click Generate once in headless Chromium, save the page "
                        "to PNG and exit (e.g. docs/images/app.png)")
    return p


def _gradio_missing() -> Optional[str]:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return "pgpis app needs Gradio: pip install -e '.[app]' (or `make app`, which installs it)"
    return None


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host`:`port` now (bound and released the way Gradio probes it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_taken(host: str, port: int) -> PgpisError:
    """The error for a port another program listens on, suggesting the next free one."""
    free = next((p for p in range(port + 1, min(port + 50, 65536)) if _port_free(host, p)), None)
    fix = f"pass `--port {free}` (free now)" if free else "pass another `--port N`"
    return PgpisError(f"port {port} on {host} is taken: another program (perhaps another `pgpis app`) is serving "
                      f"on it. Fix: {fix}, or stop that program")


def build(args: argparse.Namespace):
    """The page for parsed `args`: load the pipeline, find the dataset root, read its test split.

    Raises a :class:`pgpis.errors.PgpisError` naming what is missing (checkpoint, IPF export, dataset root).
    """
    from pgpis.app.generate import find_pose_estimator
    from pgpis.app.sources import checkpoint_data_root, load_catalog, resolve_root
    from pgpis.app.ui import build_app
    from pgpis.inference.pipeline import load_pipeline

    pipe = load_pipeline(args.checkpoint, device=args.device, fusion_model=args.fusion_model,
                         trust_checkpoint=args.trust_checkpoint, revision=args.revision)
    stored = args.root or checkpoint_data_root(args.checkpoint, trust=args.trust_checkpoint)
    root = resolve_root(stored, args.checkpoint)
    if args.root is not None and root is None:
        raise DataFormatError(Problem(args.root, "--root is not a folder",
                                      "give the DeepFashion copy to pick test sources and poses from"))
    if root is None and stored is not None:
        print(f"pgpis app: the checkpoint's dataset {stored} is not here; test sources and poses are off "
              "(pass --root DIR to offer them)", file=sys.stderr)
    catalog = load_catalog(root, parsing=pipe.needs_parsing, limit=args.max_choices) if root else None
    from pgpis.pose.options import parse_options

    from pgpis.app.source_photo import find_parser
    from pgpis.parsing.options import parser_options

    estimator = find_pose_estimator(args.estimator, parse_options(args.estimator_option))
    parser = find_parser(args.parser, parser_options(args.parser_option)) if pipe.needs_parsing else None
    demo = build_app(pipe, catalog, checkpoint=str(Path(args.checkpoint)), estimator=estimator, parser=parser)
    print(f"pgpis app: {pipe.kind} on {pipe.device}, serving http://{args.host}:{args.port}", flush=True)
    return demo


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    missing = _gradio_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    try:
        if not _port_free(args.host, args.port):  # before loading the model: seconds, for nothing
            raise port_taken(args.host, args.port)
        demo = build(args)
        if args.screenshot is None:
            _launch(demo, args)  # blocks until Ctrl+C
            return 0
        _, url, _ = _launch(demo, args, prevent_thread_lock=True, quiet=True)
    except PgpisError as err:
        print(f"pgpis app: {err}", file=sys.stderr)
        return 1
    from pgpis.app.screenshot import capture

    try:
        out = capture(url, args.screenshot)
    except (FileNotFoundError, ImportError) as err:
        print(f"pgpis app: {err}", file=sys.stderr)
        return 2
    finally:
        demo.close()
    print(f"pgpis app: wrote {out}")
    return 0


def _launch(demo, args: argparse.Namespace, **kwargs):
    """Serve `demo`; a port taken meanwhile (Gradio's OSError advises an environment variable) said in pgpis's words."""
    from pgpis.app.ui import launch

    try:
        return launch(demo, host=args.host, port=args.port, **kwargs)
    except OSError as err:
        if _port_free(args.host, args.port):
            raise
        raise port_taken(args.host, args.port) from err


__all__ = ["main", "build", "parser", "port_taken"]
