"""The dataset contract: what `pgpis data ...`, `pgpis evaluate` and a training YAML need from a dataset.

A dataset is one class deriving :class:`DatasetPackage`, found by :mod:`pgpis.data.registry` from a
built-in name (``deepfashion``, ``phoenix``, ``wpose``), an entry point of the group
``pgpis.datasets``, or a class path (``my_pkg.MyDataset`` / ``my_pkg.module:MyDataset``). It declares:

- its on-disk layout reader (:meth:`~DatasetPackage.read_layout`) and its DataModule
  (:attr:`~DatasetPackage.datamodule`, a class path a YAML's ``data.class_path`` can name);
- the hooks of the dataset commands: :meth:`~DatasetPackage.add_arguments` (its own options on the
  shared subparser of ``synth`` / ``check`` / ``preview`` / ``prepare``, only when it is the chosen
  ``--dataset``), :meth:`~DatasetPackage.run_check`, and optionally ``run_synth`` (its synthetic writer),
  ``run_preview``, ``run_prepare`` and :meth:`~DatasetPackage.add_tools` (whole extra subcommands);
- its evaluation: :meth:`~DatasetPackage.protocols` (named presets, registered with
  :func:`pgpis.metrics.protocols.register_protocol`), :attr:`~DatasetPackage.default_protocol`,
  :meth:`~DatasetPackage.add_evaluate_arguments` and :meth:`~DatasetPackage.run_evaluate`.

An optional command is available when the class overrides its ``run_<command>``
(:meth:`~DatasetPackage.supports`). Hooks return exit codes and print named problems (file, line, what,
fix) on failure, as :func:`print_problems` does. A package's class must be cheap to import: heavy
modules are imported inside the hooks.
"""
from __future__ import annotations

import argparse
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

from pgpis.errors import DataFormatError

if TYPE_CHECKING:
    from pgpis.metrics.evaluate import EvaluationResult
    from pgpis.metrics.protocols import Protocol as EvalProtocol

Tool = Callable[[argparse.Namespace], int]
Log = Callable[[str], None]
#: the `pgpis data` commands a dataset may implement (``check`` is required)
COMMANDS = ("synth", "check", "preview", "prepare")


@runtime_checkable
class PairImages(Protocol):
    """What `pgpis generate --pairs --dataset D` reads from ``D.read_layout(root)``: the images by name, their
    OpenPose-18 keypoints ``[18, 2]`` in the 256x176 (h x w) frame, and (for models that read it) the parsing map."""

    image_paths: Mapping[str, Path]
    keypoints: Mapping[str, Any]

    def image_path(self, name: str) -> Path: ...


class DatasetPackage(ABC):
    """One dataset as the commands see it; subclass it and set the class attributes.

    Attributes:
        name: what ``--dataset`` and the messages call it.
        datamodule: class path of its ``LightningDataModule`` (the batch dict of docs/CONVENTIONS.md).
        default_protocol: the ``--protocol`` of `pgpis evaluate` when none is given (None: no evaluation).
        title, terms, link: what a model card trained on it says (``pgpis export``): its full name, the terms
            its images come under, and where to read them.
    """

    name: ClassVar[str]
    datamodule: ClassVar[str]
    default_protocol: ClassVar[str | None] = None
    title: ClassVar[str] = ""
    terms: ClassVar[str] = "the dataset's own terms"
    link: ClassVar[str | None] = None

    # ------------------------------------------------------------------ data
    @abstractmethod
    def read_layout(self, root: Path, *, parsing: bool = False) -> Any:
        """Read and validate a copy at `root` (with `parsing`: require a parsing map per image); raises
        :class:`~pgpis.errors.DataFormatError` listing every problem.

        `pgpis generate --pairs` reads the result as a :class:`PairImages`: give it those members to let a
        trained model generate the dataset's pairs.
        """

    def supports(self, command: str) -> bool:
        """Whether `pgpis data <command>` (or ``evaluate``) is implemented: the class overrides its hook."""
        hook = f"run_{command}"
        return getattr(type(self), hook, None) is not getattr(DatasetPackage, hook, None)

    # ------------------------------------------------------------------ `pgpis data`
    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Add this dataset's own options of `pgpis data <command>` to the shared subparser (default: none)."""

    @abstractmethod
    def run_check(self, args: argparse.Namespace) -> int:
        """`pgpis data check`: 0 and a summary, or 1 listing every problem."""

    def run_synth(self, args: argparse.Namespace) -> int:
        """`pgpis data synth`: write the synthetic copy (``args.out``, ``args.seed``) in the real layout."""
        raise NotImplementedError(f"dataset {self.name} has no synthetic writer")

    def run_preview(self, args: argparse.Namespace) -> int:
        """`pgpis data preview`: a grid PNG of a few pairs."""
        raise NotImplementedError(f"dataset {self.name} has no preview")

    def run_prepare(self, args: argparse.Namespace) -> int:
        """`pgpis data prepare`: one-off preparation of a copy (e.g. estimate missing keypoints)."""
        raise NotImplementedError(f"dataset {self.name} needs no preparation")

    def add_tools(self, subparsers: argparse._SubParsersAction) -> dict[str, Tool]:
        """Whole extra `pgpis data` subcommands: add their parsers, return ``{name: run(args) -> exit code}``."""
        return {}

    # ------------------------------------------------------------------ `pgpis evaluate`
    def protocols(self) -> tuple[EvalProtocol, ...]:
        """The dataset's named evaluation presets (registered by the time this returns)."""
        return ()

    def add_evaluate_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this dataset's own options of `pgpis evaluate` (default: none)."""

    def run_evaluate(self, args: argparse.Namespace, log: Log) -> tuple[EvaluationResult, dict[str, EvaluationResult]]:
        """Score ``args.generated`` under ``args.protocol``: the result, and extra table rows by name."""
        raise NotImplementedError(f"dataset {self.name} has no evaluation")


def parse_size(text: str) -> tuple[int, int]:
    """An ``HxW`` option (``--size 256x176``) as ``(h, w)``; exits with the expected form otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w
    except ValueError:
        raise SystemExit(f"pgpis data: size '{text}' is not HxW, e.g. 256x176") from None


def print_problems(command: str, root: Path | str, err: DataFormatError) -> int:
    """Print `err`'s problems, one a line, under ``pgpis <command>: ROOT: N problem(s):``; returns exit code 1."""
    print(f"pgpis {command}: {root}: {len(err.problems)} problem(s):", file=sys.stderr)
    for p in err.problems:
        print(f"  - {p}", file=sys.stderr)
    return 1
