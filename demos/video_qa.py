"""Video QA demo: upload a video (or pick a bundled example), choose how many frames to sample, ask a question; the
sampled frames appear with their timestamps and the answer streams in.

    python demos/video_qa.py [--ckpt PATH] [--host 127.0.0.1] [--port 7860]

Without --ckpt it serves the tiny V-NIAH model of configs/longva.yaml (trained once and cached): it knows how to find
the frame with a digit in a synthetic haystack and little else. Any LongVA-layout directory or zoo video .ckpt works.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo.demo import ROOT, load_model, model_note, prepare_gradio, serve, upload_path

EXAMPLES = [ROOT / "tests" / "data" / "video" / name for name in ("flipping_a_pancake.mkv", "video_0.mov")]


def build_app(ckpt: Path, tiny: bool):
    gr = prepare_gradio()
    from zoo.modalities.video import LongVA, answer, read_frames

    model = load_model(ckpt, LongVA, "a LongVA video model")
    note = model_note(ckpt, tiny, "(configs/longva.yaml, trained on synthetic V-NIAH): it answers which digit a "
                      "haystack frame shows; on other videos and questions its answers are not meaningful.")

    def run(video, num_frames, question):
        path = upload_path(video)
        if path is None:
            yield [], "", "**Error:** upload a video or pick an example first."
            return
        try:
            yield [], "", f"Reading `{Path(path).name}`…"
            frames, seconds = read_frames(path, num_frames=int(num_frames))
            gallery = [(f, f"{t:.2f} s") for f, t in zip(frames, seconds)]
            yield gallery, "", f"Sampled {len(frames)} frames from `{Path(path).name}`; answering…"
            text = ""
            for piece in answer(model, frames, question, stream=True):
                text += piece
                yield gallery, text, f"Sampled {len(frames)} frames from `{Path(path).name}`; answering…"
            yield gallery, text, f"Done: {len(frames)} frames from `{Path(path).name}`."
        except Exception as err:  # a bad upload must not take the app down; say what was wrong
            yield [], "", f"**Error:** {type(err).__name__}: {err}"

    with gr.Blocks(title="zoo video QA", analytics_enabled=False) as app:
        gr.Markdown("# zoo video QA\n" + note)
        with gr.Row():
            with gr.Column():
                video = gr.File(label="video", file_types=["video", ".mkv", ".mov", ".mp4", ".avi", ".webm"],
                                elem_id="video-upload")
                frames = gr.Slider(1, 64, value=16, step=1, label="frames to sample", elem_id="num-frames")
                question = gr.Textbox(label="question", value="Which digit is written on the needle frame? Answer: ",
                                      elem_id="question")
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
    serve(build_app, __doc__.split("\n\n")[0], "longva.yaml", "longva", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
