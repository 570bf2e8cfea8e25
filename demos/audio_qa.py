"""Audio QA demo: upload or record audio, ask a question; the waveform and log-mel spectrogram appear and the answer
streams in.

    python demos/audio_qa.py [--ckpt PATH] [--host 127.0.0.1] [--port 7861] [--max-upload-mb 50]
                             [--max-question-chars 1000] [--keep-uploads-min 60]

Without --ckpt it serves the tiny audio-needle model of configs/audio_qa.yaml (trained once and cached): it answers
which DTMF code was dialled in synthetic noise and little else. Any Qwen2-Audio-layout directory or zoo audio .ckpt
works.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo.demo import ROOT, Limits, load_model, model_note, prepare_gradio, serve, upload_path

MAX_UPLOAD_MB = 50.0  # about 5 minutes of CD-quality WAV, or 55 of 128 kbit/s MP3

EXAMPLES = [ROOT / "tests" / "data" / "audio" / "jfk.flac"]


def waveform_figure(samples, n_mels: int):
    """Waveform above the Whisper log-mel spectrogram the model sees, as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from zoo.modalities.audio import log_mel_spectrogram

    mel = log_mel_spectrogram(samples, n_mels=n_mels).numpy()
    seconds = len(samples) / 16000
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
    a.plot(np.arange(len(samples)) / 16000, samples, lw=0.4)
    a.set_ylabel("amplitude")
    a.set_title(f"{seconds:.1f} s at 16 kHz")
    b.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, n_mels), cmap="magma")
    b.set_ylabel("mel bin")
    b.set_xlabel("seconds")
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def build_app(ckpt: Path, tiny: bool, limits: Limits = Limits(MAX_UPLOAD_MB)):
    from zoo.modalities.audio import Qwen2Audio, answer, load_audio

    # the model before gradio's slow import: a bad --ckpt fails at once
    model = load_model(ckpt, Qwen2Audio, "a Qwen2-Audio-shaped model")
    gr = prepare_gradio()
    note = model_note(ckpt, tiny, "(configs/audio_qa.yaml, trained on synthetic DTMF codes in noise): it answers "
                      "which code was dialled; on speech or other questions its answers are not meaningful.")
    n_mels = model.audio_tower.config.n_mels

    def run(upload, recording, question):
        path = recording or upload_path(upload)
        if path is None:
            yield None, "", "**Error:** upload or record some audio first."
            return
        try:
            yield None, "", f"Reading `{Path(path).name}`…"
            limits.check_question(question)
            samples = load_audio(path)
            image = waveform_figure(samples, n_mels)
            text = ""
            for piece in answer(model, samples, question, stream=True):
                text += piece
                yield image, text, f"`{Path(path).name}`: {len(samples) / 16000:.1f} s; answering…"
            yield image, text, f"Done: `{Path(path).name}`, {len(samples) / 16000:.1f} s."
        except Exception as err:  # a bad upload must not take the app down; say what was wrong
            yield None, "", f"**Error:** {type(err).__name__}: {err}"

    with gr.Blocks(title="zoo audio QA", analytics_enabled=False, delete_cache=limits.delete_cache) as app:
        gr.Markdown("# zoo audio QA\n" + note + "\n\n" + limits.note())
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="audio file", elem_id="audio-upload")
                recording = gr.Audio(sources=["microphone"], type="filepath", label="or record",
                                     elem_id="audio-record")
                question = gr.Textbox(label="question", value="\nWhich code was dialled? Answer: ",
                                      max_length=limits.max_question_chars, elem_id="question")
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
                examples = [[str(p)] for p in EXAMPLES if p.exists()]
                if examples:
                    gr.Examples(examples, inputs=[upload], label="bundled examples")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                plot = gr.Image(label="waveform and log-mel spectrogram", elem_id="waveform")
                out = gr.Textbox(label="answer", lines=3, elem_id="answer")
        ask.click(run, [upload, recording, question], [plot, out, status])
    return app


def main(argv: list[str] | None = None) -> None:
    serve(build_app, __doc__.split("\n\n")[0], "audio_qa.yaml", "audio_qa", argv, MAX_UPLOAD_MB)


if __name__ == "__main__":
    main(sys.argv[1:])
