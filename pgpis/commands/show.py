"""`pgpis show retrieval|pairs METRICS.json`: print a stage's results table from its metrics.json.

`make train-ipf` prints the IPF retrieval rows (paper Table 2: R@k, mean rank) and `make train-ldm` the
pair metrics of the samples beside the copy-source and background-only baselines with the margins of the
embedded default's learning bar.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from pgpis.callbacks.metrics import bar_margins, format_table as pair_table
from pgpis.metrics.retrieval import format_table as retrieval_table

BASELINE_ROWS = ("samples", "copy_source", "background_only")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgpis show", description="print a results table from a metrics.json")
    sub = parser.add_subparsers(dest="table", required=True)
    retrieval = sub.add_parser("retrieval", help="IPF retrieval rows (make train-ipf's outputs/ipf/metrics.json)")
    retrieval.add_argument("path", type=Path)
    retrieval.add_argument("--rows", nargs="*", default=None, help="rows to print, in order (default: all)")
    pairs = sub.add_parser("pairs", help="samples vs copy-source / background-only (make train-ldm's "
                           "outputs/ldm/metrics.json) with the learning bar's margins")
    pairs.add_argument("path", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.path.is_file():
        stage = "make train-ipf" if args.table == "retrieval" else "make train-ldm"
        print(f"pgpis show: {args.path}: no such file; run `{stage}` first (it writes it)", file=sys.stderr)
        return 1
    results = json.loads(args.path.read_text())
    if args.table == "retrieval":
        print(retrieval_table(results, args.rows))
        return 0
    missing = [k for k in BASELINE_ROWS if k not in results]
    if missing:
        print(f"pgpis show pairs: {args.path} has no {', '.join(missing)} rows; give the metrics.json that "
              "`pgpis fit` of an LDM stage writes (DDIMInference)", file=sys.stderr)
        return 2
    print(pair_table({k: results[k] for k in BASELINE_ROWS}))
    print("margins: " + ", ".join(f"{k} {v:+.3f}" for k, v in bar_margins(results).items())
          + "  (learning bar: >= +0.05, +4 dB, +3 dB)")
    return 0


__all__ = ["main"]
