"""The model card (README.md with Hub metadata) that `pgpis export` writes into the export folder.

Everything on the card is read from what the run left: the export's own configs (``pipeline.json`` and the
saved towers' ``config.json``) for the base models, the checkpoint's DataModule settings for the dataset,
the run's ``metrics.json`` for the figures and their protocol, the run's ``config.yaml`` (LightningCLI's)
for the training config. The metrics and training config are copied into the export with the machine's
paths made portable (:mod:`pgpis.inference.machine_paths`), so the card's claims travel with the weights.
Licences follow the base models (the Stable Diffusion ones carry RAIL use restrictions to derivatives) and
the dataset's terms; ``license=`` (``pgpis export --license``) sets the repository's licence explicitly.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import yaml

from pgpis.inference.hub import REPO_PLACEHOLDER, is_hub_id
from pgpis.inference.machine_paths import strip_machine_paths

PathLike = Union[str, os.PathLike]
CARD = "README.md"
METRICS_FILE = "metrics.json"
TRAINING_CONFIG = "training_config.yaml"
#: config keys that name a pretrained model (pgpis configs, diffusers/transformers configs)
SOURCE_KEYS = ("pretrained", "name_or_path", "_name_or_path", "pretrained_model_name_or_path")


@dataclass(frozen=True)
class Licence:
    """A base model family's licence: its Hub identifier and its name."""

    hub_id: str
    name: str
    restricts_derivatives: bool  # RAIL licences pass their use restrictions on to fine-tuned weights


#: hub-id pattern of a base model family -> its licence (the families pgpis configs load)
BASE_LICENCES: tuple[tuple[str, Licence], ...] = (
    (r"stable-diffusion-2", Licence("openrail++", "CreativeML Open RAIL++-M", True)),
    (r"stable-diffusion-v1", Licence("creativeml-openrail-m", "CreativeML Open RAIL-M", True)),
    (r"dinov2", Licence("apache-2.0", "Apache-2.0", False)),
    (r"clip", Licence("mit", "MIT", False)),
)


@dataclass(frozen=True)
class Dataset:
    name: str
    terms: str
    link: Optional[str] = None


SYNTHETIC = Dataset("synthetic DeepFashion-layout data written by pgpis (`pgpis data synth`)",
                    "none (generated, no third-party content)")


def licence_of(hub_id: str) -> Optional[Licence]:
    """The licence of the base model family `hub_id` belongs to, None when pgpis does not know it."""
    for pattern, licence in BASE_LICENCES:
        if re.search(pattern, hub_id, flags=re.IGNORECASE):
            return licence
    return None


def _walk_sources(data: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in SOURCE_KEYS and isinstance(value, str) and is_hub_id(value):
                yield value, f"{where}.{key}" if where else key
            else:
                yield from _walk_sources(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk_sources(value, f"{where}[{i}]")


def base_models(folder: Path, meta: Mapping[str, Any]) -> dict[str, list[str]]:
    """{hub id: [where it is named]} from pipeline.json (model config, towers saved into the export) and the
    export's ``config.json`` files."""
    found: dict[str, list[str]] = {}
    for hub_id, where in _walk_sources(meta.get("module", {}), "model"):
        found.setdefault(hub_id, []).append(where)
    for dotted, hub_id in (meta.get("pretrained_from") or {}).items():
        found.setdefault(hub_id, []).append(f"model.{dotted}")
    for config in sorted(folder.rglob("config.json")):
        data = json.loads(config.read_text(encoding="utf-8"))
        for hub_id, where in _walk_sources(data, ""):
            found.setdefault(hub_id, []).append(f"{config.relative_to(folder).as_posix()}: {where}")
    return found


def _run_files(checkpoint: Optional[Path], name: str, given: Optional[PathLike]) -> Optional[Path]:
    """`given`, else `name` in the checkpoint's folder or the two above it (``<run>/[<logger name>/]checkpoints/``)."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"export: {path} does not exist; give the run's {name} or leave the option out")
        return path
    if checkpoint is None:
        return None
    return next((d / name for d in (checkpoint.parent, *list(checkpoint.parents)[1:3]) if (d / name).is_file()), None)


def _checkpoint_facts(checkpoint: Optional[Path]) -> dict[str, Any]:
    """The DataModule's settings and the step count of a `pgpis fit` checkpoint (read weights-only, mmapped)."""
    if checkpoint is None or not checkpoint.is_file():
        return {}
    from pgpis.safe_load import load_checkpoint

    ckpt = load_checkpoint(checkpoint, mmap=True, verify=False)
    return {"data": dict(ckpt.get("datamodule_hyper_parameters") or {}), "global_step": ckpt.get("global_step"),
            "epoch": ckpt.get("epoch")}


def dataset_of(data: Mapping[str, Any]) -> Optional[Dataset]:
    """The dataset a DataModule's settings read: synthetic when its root carries pgpis's marker."""
    from pgpis.data.registry import dataset_reading
    from pgpis.data.synthetic_out import SYNTHETIC_MARKER

    root = data.get("root")
    if isinstance(root, str) and (Path(root) / SYNTHETIC_MARKER).exists():
        return SYNTHETIC
    found = dataset_reading(str(data.get("_class_path")))
    return None if found is None else Dataset(found.title or found.name, found.terms, found.link)


def _metric_rows(metrics: Mapping[str, Any], section: str = "") -> Iterator[tuple[str, str, float]]:
    """(section, metric, value) for every number in a metrics.json (`DDIMInference` or `pgpis evaluate`)."""
    skip = {"files", "settings", "protocol_settings", "unavailable", "n_pairs", "global_step"}
    for key, value in metrics.items():
        if key in skip:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            yield section or "metrics", key, float(value)
        elif isinstance(value, Mapping):
            name = metrics.get("protocol") if key == "metrics" and isinstance(metrics.get("protocol"), str) else key
            yield from _metric_rows(value, f"{section} / {name}" if section else str(name))


def _protocol(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the figures were measured under (split, pairs, sampler, protocol), as recorded."""
    out: dict[str, Any] = {}
    for key in ("settings", "protocol_settings", "n_pairs", "unavailable"):
        if metrics.get(key):
            out[key] = metrics[key]
    if isinstance(metrics.get("protocol"), str):
        out["protocol"] = metrics["protocol"]
    elif isinstance(metrics.get("protocol"), Mapping):
        out["protocol"] = _protocol(metrics["protocol"])
    return out


def _yaml(data: Any, flow: Optional[bool] = None) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, width=110).strip()


def _licence_section(models: Mapping[str, Sequence[str]], dataset: Optional[Dataset], chosen: Optional[str]
                     ) -> tuple[str, list[str]]:
    """(the card's licence id, the lines of its Licence section)."""
    lines = []
    licences = {hub_id: licence_of(hub_id) for hub_id in models}
    for hub_id, licence in licences.items():
        lines.append(f"- base model `{hub_id}`: {licence.name if licence else 'see its model card'}")
    if not models:
        lines.append("- base models: none (every weight was trained from scratch by this run)")
    if dataset is not None:
        lines.append(f"- training data ({dataset.name}): {dataset.terms}")
    restricting = [lic for lic in licences.values() if lic is not None and lic.restricts_derivatives]
    if chosen:
        licence_id = chosen
        lines.append(f"- these weights: `{chosen}`, as the publisher chose (`pgpis export --license`)")
    elif restricting:
        licence_id = restricting[0].hub_id
        lines.append(f"- these weights: {restricting[0].name}, whose use restrictions pass on to fine-tuned weights")
    else:
        licence_id = "other"
        lines.append("- these weights: not chosen at export (`pgpis export --license ID` sets it); the terms above apply")
    return licence_id, lines


def render_model_card(folder: Path, meta: Mapping[str, Any], facts: Mapping[str, Any],
                      metrics: Optional[Mapping[str, Any]], training_config: bool, licence: Optional[str]):
    """The :class:`huggingface_hub.ModelCard` of an export folder."""
    from huggingface_hub import ModelCard, ModelCardData

    kind = str(meta.get("kind", "model"))
    models = base_models(folder, meta)
    data = {k: v for k, v in (facts.get("data") or {}).items() if not k.startswith("_instantiator")}
    dataset = dataset_of(data)
    licence_id, licence_lines = _licence_section(models, dataset, licence)
    rows = list(_metric_rows(metrics)) if metrics else []
    card_data = ModelCardData(
        license=licence_id, library_name="pgpis", pipeline_tag="image-to-image",
        tags=["pgpis", kind, "pose-guided-person-image-synthesis", "diffusion", "safetensors"],
        base_model=sorted(models) or None, metrics=sorted({m for _, m, _ in rows}) or None)
    portable_data, _ = strip_machine_paths(data)
    size = meta.get("data", {}).get("image_size")
    body = [
        f"# {kind} model trained with pgpis", "",
        f"A `{kind}` pose-guided person image synthesis model ({size[0]}x{size[1]} images), exported by "
        "`pgpis export`: one safetensors file per component plus JSON configs (`pipeline.json`), nothing that "
        "unpickles." + (" The weights are EMA averages." if meta.get("ema") else ""), "",
        "## How to load", "", "```python", "import pgpis", "",
        f'pipe = pgpis.load_pipeline("{REPO_PLACEHOLDER}")  # downloads into the Hugging Face cache once; '
        "offline (HF_HUB_OFFLINE=1) from there",
        'print(pipe.needs)  # inputs besides the source photo and the target pose, e.g. ("source_parsing",)',
        'image = pipe.generate("person.jpg", "pose.json", seed=0)', "```", "",
        f"`pgpis generate --checkpoint {REPO_PLACEHOLDER} --source person.jpg --pose pose.json --out out.png` "
        f"(also `pgpis app` / `pgpis animate`; `--revision` picks a branch, tag or commit).", "",
        "## Base models and licences", "", *licence_lines, "",
    ]
    if models:
        body += ["| base model | named at |", "| --- | --- |"]
        body += [f"| [`{m}`](https://huggingface.co/{m}) | {'; '.join(f'`{w}`' for w in where)} |"
                 for m, where in sorted(models.items())] + [""]
    body += ["## Training data", ""]
    if dataset is not None:
        body += [f"{dataset.name}" + (f" ({dataset.link})" if dataset.link else "") + f". Terms: {dataset.terms}.", ""]
    elif data:
        body += [f"DataModule `{data.get('_class_path')}` (pgpis has no record of its terms).", ""]
    else:
        body += ["Not recorded (exported from a pipeline without its checkpoint).", ""]
    body += ["## Evaluation", ""]
    if rows:
        body += ["| set | metric | value |", "| --- | --- | --- |"]
        body += [f"| {section} | {metric} | {value:.4g} |" for section, metric, value in rows]
        protocol = _protocol(metrics)
        if protocol:
            body += ["", "Measured under (from `metrics.json`, copied into this repository):", "", "```yaml",
                     _yaml(strip_machine_paths(protocol)[0]), "```"]
        body.append("")
    else:
        body += ["No `metrics.json` was found for this run (`pgpis export --metrics FILE` adds one).", ""]
    body += ["## Training config", ""]
    trained = {k: facts[k] for k in ("global_step", "epoch") if facts.get(k) is not None}
    if trained:
        body += [", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in trained.items()) + ".", ""]
    if portable_data:
        body += ["Data settings (the checkpoint's DataModule hyper-parameters):", "", "```yaml", _yaml(portable_data),
                 "```", ""]
    body += ["The model config (class paths and init args) is `model` in `pipeline.json`"
             + (f"; the full `pgpis fit` config is `{TRAINING_CONFIG}`" if training_config else "")
             + " (paths of the training machine shortened to `.../<last two parts>` or made relative).", ""]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_card(folder: PathLike, meta: Mapping[str, Any], *, checkpoint: Optional[PathLike] = None,
                     metrics: Optional[PathLike] = None, training_config: Optional[PathLike] = None,
                     licence: Optional[str] = None) -> Path:
    """Write ``README.md`` (and copies of the run's metrics.json and config.yaml) into an export folder whose
    ``pipeline.json`` is `meta`.

    `metrics` / `training_config` default to ``metrics.json`` / ``config.yaml`` in the checkpoint's folder or the
    run folder above it; `licence` is a Hub licence id (default: from the base models, see :func:`licence_of`).
    """
    folder = Path(folder)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    roots = [ckpt.parent.parent] if ckpt is not None else []
    figures = None
    metrics_path = _run_files(ckpt, METRICS_FILE, metrics)
    if metrics_path is not None:
        figures, _ = strip_machine_paths(json.loads(metrics_path.read_text(encoding="utf-8")), roots)
        (folder / METRICS_FILE).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    config_path = _run_files(ckpt, "config.yaml", training_config)
    if config_path is not None:
        config, _ = strip_machine_paths(yaml.safe_load(config_path.read_text(encoding="utf-8")), roots)
        (folder / TRAINING_CONFIG).write_text(_yaml(config, flow=False) + "\n", encoding="utf-8")
    card = render_model_card(folder, meta, _checkpoint_facts(ckpt), figures, config_path is not None, licence)
    card.save(folder / CARD)
    return folder / CARD


__all__ = ["write_model_card", "render_model_card", "base_models", "licence_of", "BASE_LICENCES", "CARD"]
