"""The Gradio Blocks page: source, target pose, sampling settings, output; wired to :func:`pgpis.app.generate.generate`.

Widgets carry ``elem_id``s (``source-upload``, ``pose-file``, ``generate``, ``sample``, ...) so the browser test
and users' own scripts can find them. Fields the loaded model does not read (the parsing map for FPDM, the second
guidance weight for TruePose) are not shown at all.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import gradio as gr
from PIL import Image

from pgpis.app import generate as gen
from pgpis.app.sources import Catalog
from pgpis.images import load_rgb
from pgpis.errors import PgpisError
from pgpis.inference.pipeline import Pipeline
from pgpis.inference.poses import load_target_pose

KEYPOINT_TYPES = [".txt", ".csv", ".json", ".png", ".jpg", ".jpeg"]
TITLE = "pgpis: pose-guided person image synthesis"


def _error_text(err: Exception) -> str:
    """A pgpis / input error's message (it says what to fix)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])  # str(KeyError) would quote the message
    if isinstance(err, (ValueError, PgpisError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _error_box(err: Exception) -> str:
    """The whole message for the status box beside the output (Markdown; line breaks kept), where the user looks:
    a toast would vanish and cut long messages, and raising would turn the output panels into "Error"."""
    lines = [line.replace("<", "&lt;") for line in _error_text(err).splitlines()]
    return "**Could not generate.**  \n" + "  \n".join(lines)


def _header(pipe: Pipeline, checkpoint: str, catalog: Optional[Catalog]) -> str:
    h, w = pipe.image_size
    data = (f"test split of `{catalog.root}` ({len(catalog.sources)} sources, {len(catalog.poses)} poses)"
            if catalog is not None else "none (start with `--root DIR` to pick test sources and poses)")
    return (f"## {TITLE}\n**{pipe.kind.upper()}** from `{checkpoint}`: {w}x{h} px images on "
            f"{pipe.device.type.upper()}{' (EMA weights)' if pipe.ema else ''}. Dataset: {data}.")


def build_app(pipe: Pipeline, catalog: Optional[Catalog] = None, *, checkpoint: str = "",
              estimator: Optional[gen.PoseEstimator] = None, parser: Optional[gen.PhotoParser] = None) -> gr.Blocks:
    """The demo page for one loaded pipeline; `catalog` offers test sources and poses, `estimator` poses from photos
    (and an uploaded source's keypoints), `parser` an uploaded source's parsing map."""
    needs = gen.needs(pipe)
    pose_types = KEYPOINT_TYPES[:3] if needs.target_keypoints else KEYPOINT_TYPES
    guidance = gen.default_guidance(pipe)
    steps = pipe.sampler().num_inference_steps
    source_modes = ([gen.SOURCE_PICK] if catalog else []) + [gen.SOURCE_UPLOAD]
    pose_modes = ([gen.POSE_PICK] if catalog else []) + [gen.POSE_FILE] + ([gen.POSE_PHOTO] if estimator else [])
    first_source, first_pose = (catalog.first_pair if catalog and catalog.first_pair else (None, None))

    def source_preview(name: Optional[str]) -> Optional[Image.Image]:
        if catalog is None or not name:
            return None
        return gen.for_display(load_rgb(catalog.image_path(name), name))

    def pose_preview(mode: str, name: Optional[str], path: Optional[str], row: Optional[str]) -> tuple[Any, Any]:
        """(the rendered target pose, the status box): a pose that cannot be read leaves the panel as it was."""
        try:
            if mode == gen.POSE_PICK and catalog is not None and name:
                return gen.render_pose(pipe, load_target_pose(catalog.keypoints(name))), ""
            if mode == gen.POSE_FILE and path:
                row = (row or "").strip()
                return gen.render_pose(pipe, load_target_pose(f"{path}#{row}" if row else path)), ""
        except (PgpisError, ValueError, KeyError, FileNotFoundError) as err:
            return gr.update(), _error_box(err)
        return None, gr.update()

    def photo_preview(mode: str, photo: Optional[Image.Image]) -> tuple[Any, Any]:
        """The pose estimated on an uploaded photo, as the model will see it (or no change in other modes)."""
        if mode != gen.POSE_PHOTO or estimator is None:
            return gr.update(), gr.update()
        if photo is None:
            return None, gr.update()
        try:
            return gen.render_pose(pipe, load_target_pose(estimator(photo))), ""
        except (PgpisError, ValueError) as err:
            return gr.update(), _error_box(err)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(_header(pipe, checkpoint, catalog), elem_id="header")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Source person")
                source_mode = gr.Radio(source_modes, value=source_modes[0], label="Source", elem_id="source-mode")
                with gr.Group(visible=source_modes[0] == gen.SOURCE_PICK) as pick_group:
                    source_name = gr.Dropdown(catalog.sources if catalog else [], value=first_source,
                                              label="Source image (test split)", elem_id="source-pick")
                    source_shown = gr.Image(source_preview(first_source), label="Picked source", type="pil",
                                            interactive=False, format="png", elem_id="source-preview")
                with gr.Group(visible=source_modes[0] == gen.SOURCE_UPLOAD) as upload_group:
                    source_image = gr.Image(label="Source photo", type="pil", sources=["upload"], format="png",
                                            elem_id="source-upload")
                    parsing_file = gr.File(label="Source parsing map (PNG of LIP class indices)"
                                           + (f"; optional: made by {parser.name} when not given" if parser else ""),
                                           file_types=[".png"], visible=needs.parsing, elem_id="parsing-upload")
                    source_pose_file = gr.File(label="Source keypoints (.txt / .csv / .json)"
                                               + (f"; optional: estimated by {estimator.name} when not given"
                                                  if estimator is not None else ""),
                                               file_types=KEYPOINT_TYPES[:3], visible=needs.pose,
                                               elem_id="source-pose-upload")
            with gr.Column():
                gr.Markdown("### Target pose")
                pose_mode = gr.Radio(pose_modes, value=pose_modes[0], label="Target pose", elem_id="pose-mode")
                pose_name = gr.Dropdown(catalog.poses if catalog else [], value=first_pose, label="Pose of test image",
                                        visible=pose_modes[0] == gen.POSE_PICK, elem_id="pose-pick")
                with gr.Group(visible=pose_modes[0] == gen.POSE_FILE) as file_group:
                    pose_file = gr.File(label="Keypoint file (.txt PCDMs, .csv CFLD, .json [[x, y], ...])"
                                        + ("" if needs.target_keypoints else " or pose image"),
                                        file_types=pose_types, elem_id="pose-file")
                    pose_row = gr.Textbox(label="Row of a many-row CFLD .csv (image name)", elem_id="pose-row")
                # the seam for a pose estimator: without one there is no widget, only an empty value
                with gr.Group(visible=pose_modes[0] == gen.POSE_PHOTO) as photo_group:
                    pose_photo = (gr.Image(label=f"Photo to take the pose from ({estimator.name})", type="pil",
                                           sources=["upload"], format="png", elem_id="pose-photo")
                                  if estimator is not None else gr.State(None))
                    retarget = (gr.Checkbox(False, label="Retarget to the source's proportions (bone lengths, "
                                            "neck fixed)", elem_id="pose-retarget")
                                if estimator is not None else gr.State(False))
                first_render = pose_preview(pose_modes[0], first_pose, None, None)[0]
                pose_shown = gr.Image(first_render if isinstance(first_render, Image.Image) else None,
                                      label="Rendered target pose",
                                      type="pil", interactive=False, format="png", elem_id="pose-render")
            with gr.Column():
                gr.Markdown("### Sample")
                if len(guidance) == 2:
                    w_source = gr.Slider(0.0, 10.0, value=guidance[0], step=0.1, label="Source guidance w_s",
                                         info="cumulative CFG: weight of the pose + source branch", elem_id="w-source")
                    w_fusion = gr.Slider(0.0, 10.0, value=guidance[1], step=0.1, label="Fusion guidance w_f",
                                         info="cumulative CFG: weight of the IPF fusion branch", elem_id="w-fusion")
                else:
                    w_source = gr.Slider(0.0, 10.0, value=guidance[0], step=0.1, label="Guidance scale (CFG)",
                                         info="1 = no guidance", elem_id="w-cfg")
                    w_fusion = gr.State(None)  # one weight only: TruePose's plain CFG
                step_count = gr.Slider(1, 200, value=steps, step=1, label="Sampling steps", elem_id="steps")
                seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                sample = gr.Image(label="Generated", type="pil", interactive=False, format="png", elem_id="sample")
                info = gr.Markdown(elem_id="info")

        def on_source_mode(mode: str):
            return gr.update(visible=mode == gen.SOURCE_PICK), gr.update(visible=mode == gen.SOURCE_UPLOAD)

        def on_pose_mode(mode: str, name, path, row):
            return (gr.update(visible=mode == gen.POSE_PICK), gr.update(visible=mode == gen.POSE_FILE),
                    *pose_preview(mode, name, path, row))

        source_mode.change(on_source_mode, source_mode, [pick_group, upload_group])
        source_name.change(source_preview, source_name, source_shown)
        pose_mode.change(on_pose_mode, [pose_mode, pose_name, pose_file, pose_row],
                         [pose_name, file_group, pose_shown, info])
        if estimator is not None:
            pose_mode.change(lambda mode: gr.update(visible=mode == gen.POSE_PHOTO), pose_mode, photo_group)
            pose_mode.change(photo_preview, [pose_mode, pose_photo], [pose_shown, info])
            pose_photo.change(photo_preview, [pose_mode, pose_photo], [pose_shown, info])
        for widget in (pose_name, pose_file, pose_row):
            widget.change(pose_preview, [pose_mode, pose_name, pose_file, pose_row], [pose_shown, info])

        def run(s_mode, s_name, s_image, parsing, s_pose, p_mode, p_name, p_file, p_row, p_photo, p_retarget,
                n_steps, n_seed, w_1, w_2, progress=gr.Progress()):
            req = gen.Request(source_mode=s_mode, source_name=s_name, source_image=s_image, parsing_file=parsing,
                              source_pose_file=s_pose, pose_mode=p_mode, pose_name=p_name, pose_file=p_file,
                              pose_row=p_row, pose_photo=p_photo, retarget=bool(p_retarget),
                              guidance=tuple(float(w) for w in (w_1, w_2) if w is not None),
                              steps=int(n_steps), seed=int(n_seed or 0))
            progress(0, desc="denoising")
            try:
                result = gen.generate(pipe, catalog, req, lambda done, total: progress((done, total), desc="denoising"),
                                      estimator, parser)
            except (PgpisError, ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
                return gr.update(), None, _error_box(err)  # the pose panel keeps what it showed
            return result.pose, result.sample, result.info

        button.click(run, [source_mode, source_name, source_image, parsing_file, source_pose_file, pose_mode, pose_name,
                           pose_file, pose_row, pose_photo, retarget, step_count, seed, w_source, w_fusion],
                     [pose_shown, sample, info], concurrency_limit=1)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: Optional[int] = None, **kwargs: Any):
    """Serve on `host`:`port` (no share link, no server-side rendering: nothing but loopback is needed)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return demo.queue().launch(server_name=host, server_port=port, share=False, ssr_mode=False, **kwargs)


__all__ = ["build_app", "launch", "TITLE"]
