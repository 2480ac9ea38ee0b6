"""`pgpis push EXPORT_DIR ORG/NAME`: upload a `pgpis export` folder to a Hugging Face Hub model repository."""
from __future__ import annotations

import argparse
from typing import Sequence


def main(argv: Sequence[str]) -> int:
    """`pgpis push` (registered in :data:`pgpis.cli.TOOLS`)."""
    parser = argparse.ArgumentParser(
        prog="pgpis push",
        description="Upload a folder written by `pgpis export` (safetensors + JSON + model card) to a Hugging Face "
                    "model repository, created if needed. Log in first with `hf auth login` (or set HF_TOKEN). "
                    "Anyone can then load it with `pgpis.load_pipeline(\"ORG/NAME\")` or `--checkpoint ORG/NAME`.")
    parser.add_argument("export_dir", help="folder written by `pgpis export CKPT OUT_DIR`")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="model repository on the Hub, e.g. your-name/fpdm-deepfashion")
    parser.add_argument("--revision", default=None, help="branch to commit to (created from main when missing; "
                                                         "default: main)")
    parser.add_argument("--private", action="store_true", help="create the repository private (an existing "
                                                               "repository keeps its visibility)")
    parser.add_argument("--token", default=None, help="Hub token with write access (default: the `hf auth login` "
                                                      "one, or HF_TOKEN)")
    parser.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(list(argv))
    from pgpis.inference.upload import push_export

    url = push_export(args.export_dir, args.repo_id, revision=args.revision, private=args.private or None,
                      token=args.token, commit_message=args.message)
    print(f"pushed {args.export_dir} -> {args.repo_id}"
          f"{f' (revision {args.revision})' if args.revision else ''}: {url}")
    return 0
