"""Video QA demo: upload a video (or pick a bundled example), choose how many frames to sample, ask a question; the
sampled frames appear with their timestamps and the answer streams in.

    python demos/video_qa.py [--ckpt PATH] [--host 127.0.0.1] [--port 7860] [--max-upload-mb 200]
                             [--max-question-chars 1000] [--keep-uploads-min 60]

Without --ckpt it serves the tiny V-NIAH model of configs/longva.yaml (trained once and cached): it knows how to find
the frame with a digit in a synthetic haystack and little else. Any LongVA-layout directory or zoo video .ckpt works.
A clip with fewer frames than the slider asks for is sampled whole, each frame once, and the status says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo.demo import ROOT, Limits, load_model, model_note, prepare_gradio, serve, upload_path

MAX_UPLOAD_MB = 200.0  # about 1.5 minutes of 1080p phone video, far longer at lower resolutions
MAX_FRAMES = 64  # the slider's top; a request from outside the page is held to it too

EXAMPLES = [ROOT / "tests" / "data" / "video" / name for name in ("flipping_a_pancake.mkv", "video_0.mov")]


def build_app(ckpt: Path, tiny: bool, limits: Limits = Limits(MAX_UPLOAD_MB)):
    from zoo.modalities.video import LongVA, answer, read_frames

    # the model before gradio's slow import: a bad --ckpt fails at once
    model = load_model(ckpt, LongVA, "a LongVA video model")
    gr = prepare_gradio()
    note = model_note(ckpt, tiny, "(configs/longva.yaml, trained on synthetic V-NIAH): it answers which digit a "
                      "haystack frame shows; on other videos and questions its answers are not meaningful.")

    def run(video, num_frames, question):
        path = upload_path(video)
        if path is None:
            yield [], "", "**Error:** upload a video or pick an example first."
            return
        try:
            yield [], "", f"Reading `{Path(path).name}`…"
            limits.check_question(question)
            asked = int(num_frames)
            if not 1 <= asked <= MAX_FRAMES:
                raise ValueError(f"frames to sample must be 1–{MAX_FRAMES}, got {num_frames}")
            # a clip shorter than the slider is sampled whole, each frame once, rather than refused or padded
            frames, seconds = read_frames(path, num_frames=asked, on_short="cap")
            short = f" The clip has only {len(frames)} frames; using all {len(frames)}." if len(frames) < asked else ""
            gallery = [(f, f"{t:.2f} s") for f, t in zip(frames, seconds)]
            yield gallery, "", f"Sampled {len(frames)} frames from `{Path(path).name}`; answering…{short}"
            text = ""
            for piece in answer(model, frames, question, stream=True):
                text += piece
                yield gallery, text, f"Sampled {len(frames)} frames from `{Path(path).name}`; answering…{short}"
            yield gallery, text, f"Done: {len(frames)} frames from `{Path(path).name}`.{short}"
        except Exception as err:  # a bad upload must not take the app down; say what was wrong
            yield [], "", f"**Error:** {type(err).__name__}: {err}"

    with gr.Blocks(title="zoo video QA", analytics_enabled=False, delete_cache=limits.delete_cache) as app:
        gr.Markdown("# zoo video QA\n" + note + "\n\n" + limits.note())
        with gr.Row():
            with gr.Column():
                video = gr.File(label="video", file_types=["video", ".mkv", ".mov", ".mp4", ".avi", ".webm"],
                                elem_id="video-upload")
                frames = gr.Slider(1, MAX_FRAMES, value=16, step=1, label="frames to sample", elem_id="num-frames")
                question = gr.Textbox(label="question", value="Which digit is written on the needle frame? Answer: ",
                                      max_length=limits.max_question_chars, elem_id="question")
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
                examples = [[str(p)] for p in EXAMPLES if p.exists()]
                if examples:
                    gr.Examples(examples, inputs=[video], label="bundled examples")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                gallery = gr.Gallery(label="sampled frames (timestamp)", columns=4, elem_id="frames")
                out = gr.Textbox(label="answer", lines=3, elem_id="answer")
        ask.click(run, [video, frames, question], [gallery, out, status])
    return app


def main(argv: list[str] | None = None) -> None:
    serve(build_app, __doc__.split("\n\n")[0], "longva.yaml", "longva", argv, MAX_UPLOAD_MB)


if __name__ == "__main__":
    main(sys.argv[1:])
