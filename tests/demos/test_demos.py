"""The Gradio demos, clicked through in Debian's headless Chromium with Playwright: a video or audio upload gives
frames / a spectrogram and a non-empty streamed answer; a corrupted or non-media upload, an upload above
--max-upload-mb or a question above --max-question-chars shows a readable error in the page and the next valid
request still works; the uploads are gone from gradio's cache once the demo is stopped. Screenshots go to
$ZOO_TEST_ARTIFACTS (default tests/artifacts)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ZOO_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))

pytest.importorskip("gradio", reason="the demos need the [demo] extra (gradio)")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (the [demo] extra)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need Debian's chromium at /usr/bin/chromium")


def _tiny_checkpoint(tmp_path: Path, config: str, module_cls, config_cls) -> Path:
    """An untrained model of a demo config, saved as zoo.fit would save it (architecture in hyper_parameters).
    $ZOO_DEMO_VIDEO_CKPT / $ZOO_DEMO_AUDIO_CKPT serve a trained checkpoint instead (how the README's screenshots
    were taken)."""
    given = os.environ.get("ZOO_DEMO_VIDEO_CKPT" if "longva" in config else "ZOO_DEMO_AUDIO_CKPT")
    if given:
        return Path(given)
    fields = yaml.safe_load((ROOT / "configs" / config).read_text())["model"]["init_args"]["model"]
    module = module_cls(config_cls(**fields))
    path = tmp_path / f"{config}.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, script: str, ckpt: Path, tmp_path: Path, *options: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.uploads = tmp_path / "cache" / "gradio"
        # GRADIO_TEMP_DIR given, not inherited: a test that ran prepare_gradio() in this process may have set it
        env = {**os.environ, "ZOO_CACHE": str(tmp_path / "cache"), "GRADIO_TEMP_DIR": str(self.uploads),
               "OMP_NUM_THREADS": "1"}
        self.log = open(tmp_path / f"{script}.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "demos" / script), "--ckpt", str(ckpt),
                                      "--port", str(self.port), *options],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{script} exited: {(tmp_path / f'{script}.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{script} did not serve {self.url} within 120 s")

    def cached_files(self) -> list[str]:
        """Names of the non-empty files in gradio's cache. (gr.File leaves one empty tmp* file there per request,
        which gradio does not track for deletion; gradio 6.31, components/file.py.)"""
        return sorted(p.name for p in self.uploads.rglob("*") if p.is_file() and p.stat().st_size > 0)

    def close(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=20)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, url: str):
    """A page on the demo once the app has rendered (a file set on the input before then is lost)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(url, wait_until="networkidle")
    page.locator("#ask").wait_for(timeout=120_000)
    return page


def _upload(page, upload_id: str, file: Path, attempts: int = 3) -> None:
    """Set the file on the component's input until the component lists it (on a cold first start the first set
    was seen to be dropped). The listed name is split into stem and extension spans, so it is found by its cell's
    aria-label; its whole text shows only in a progress element while the upload is in flight, which a fast upload
    finished before the wait looked."""
    listed = page.locator(f"#{upload_id}").get_by_label(file.name, exact=True).first
    for attempt in range(attempts):
        if attempt and listed.is_visible():  # a slow upload that landed after the wait gave up
            return
        page.locator(f"#{upload_id} input[type=file]").set_input_files(str(file))
        try:
            listed.wait_for(timeout=40_000)
            return
        except sync_api.TimeoutError:
            if attempt == attempts - 1:
                raise


def _ask(page, upload_id: str, file: Path, timeout_ms: int = 240_000) -> str:
    """Upload ``file``, wait until the component shows it, click Ask and wait for the run to end; → status text."""
    try:
        _upload(page, upload_id, file)
        # every request first says "Reading <file>", so the previous request's final message (this file name
        # differs) cannot be mistaken for this one's
        before = page.evaluate(f"() => {STATUS_JS}.innerText")
        _click_until_started(page, before)
        page.wait_for_function(
            f"before => {{ const t = {STATUS_JS}.innerText; "
            "return t !== before && (t.startsWith('Done') || t.startsWith('Error')); }", arg=before,
            timeout=timeout_ms)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed_{file.name}.png"), full_page=True)
        raise
    return page.evaluate(f"() => {STATUS_JS}.innerText")


def _click_until_started(page, before: str, attempts: int = 3) -> None:
    """Click Ask until the request starts (its status leaves ``before``): gradio drops a click that lands while the
    upload is still being sent, which a loaded machine was seen to hit."""
    for attempt in range(attempts):
        page.locator("#ask").click()
        try:
            page.wait_for_function(f"before => {STATUS_JS}.innerText !== before", arg=before, timeout=30_000)
            return
        except sync_api.TimeoutError:
            if attempt == attempts - 1:
                raise


STATUS_JS = "(document.querySelector('#status .prose') || document.querySelector('#status'))"


def _clear(page, upload_id: str):
    page.locator(f"#{upload_id}").get_by_label("Clear").first.click()


def _set_question(page, text: str) -> None:
    """Set the question as a script would, past the text box's maxlength (which cuts what a user types or pastes),
    to reach the handler's own check."""
    page.locator("#question textarea").evaluate(
        "(el, text) => { el.value = text; el.dispatchEvent(new Event('input', {bubbles: true})); }", text)


def test_video_demo_in_a_browser(tmp_path, browser):
    from zoo.modalities.video import LongVAConfig, LongVAModule

    question = "Which digit is written on the needle frame? Answer: "
    demo = Demo("video_qa.py", _tiny_checkpoint(tmp_path, "longva.yaml", LongVAModule, LongVAConfig), tmp_path,
                "--max-upload-mb", "1", "--max-question-chars", "200")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    oversized = tmp_path / "oversized.mp4"
    oversized.write_bytes(bytes(2 * 1024 * 1024))
    try:
        page = _open(browser, demo.url)
        assert "Limits: uploads up to 1 MB, questions up to 200 characters; uploads are deleted from the server " \
               "after 60 minutes and when it stops." in page.locator("body").inner_text()
        page.locator("#question textarea").fill(question)
        status = _ask(page, "video-upload", DATA / "video" / "flipping_a_pancake.mkv")
        assert status.startswith("Done: 16 frames from"), status
        assert page.locator("#frames img").count() == 16
        assert page.locator("#frames").get_by_text("10.").count() >= 1  # timestamps as captions (last frames ≈ 10 s)
        assert page.locator("#answer textarea").input_value() != ""
        page.screenshot(path=str(ARTIFACTS / "video_qa.png"), full_page=True)

        _clear(page, "video-upload")
        status = _ask(page, "video-upload", DATA / "video" / "corrupted.mp4")
        assert "Error" in status and "VideoDecodeError" in status and "corrupted.mp4" in status, status
        page.screenshot(path=str(ARTIFACTS / "video_qa_error.png"), full_page=True)

        # 2 MB against --max-upload-mb 1: gradio refuses it in the page, and its server refuses any other client
        _clear(page, "video-upload")
        page.locator("#video-upload input[type=file]").set_input_files(str(oversized))
        page.get_by_text('File(s) exceed the maximum allowed size of 1.0 Mb: "oversized.mp4"').wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "video_qa_oversized.png"), full_page=True)
        refused = httpx.post(demo.url + "gradio_api/upload", files={"files": (oversized.name, oversized.read_bytes())})
        assert refused.status_code == 413 and "File size exceeded maximum allowed size" in refused.text, refused.text

        assert page.locator("#question textarea").get_attribute("maxlength") == "200"
        _set_question(page, "x" * 201)
        status = _ask(page, "video-upload", DATA / "video" / "video_0.mov")
        assert status == "Error: ValueError: the question is 201 characters long; the limit is 200 " \
                         "(--max-question-chars)", status

        # the server still serves; video_0.mov has 3 frames, fewer than the slider's 16
        _set_question(page, question)
        _clear(page, "video-upload")
        status = _ask(page, "video-upload", DATA / "video" / "video_0.mov")
        assert status == "Done: 3 frames from video_0.mov. The clip has only 3 frames; using all 3.", status
        assert page.locator("#frames img").count() == 3
        assert page.locator("#answer textarea").input_value() != ""
        uploaded = demo.cached_files()
        assert {"flipping_a_pancake.mkv", "corrupted.mp4", "video_0.mov"} <= set(uploaded), uploaded
    finally:
        code = demo.close()
    assert code == 0  # SIGTERM closes the server as Ctrl-C does...
    assert demo.cached_files() == []  # ...and gradio deletes every upload on the way out
    assert not (tmp_path / "cache" / "demo_runs").exists()  # --ckpt given: nothing trained or cached


def test_audio_demo_in_a_browser(tmp_path, browser):
    from zoo.modalities.audio import AudioQAModule, Qwen2AudioConfig

    demo = Demo("audio_qa.py", _tiny_checkpoint(tmp_path, "audio_qa.yaml", AudioQAModule, Qwen2AudioConfig),
                tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    try:
        page = _open(browser, demo.url)
        assert "Limits: uploads up to 50 MB" in page.locator("body").inner_text()  # the audio demo's default
        status = _ask(page, "audio-upload", DATA / "audio" / "jfk.flac")
        assert status.startswith("Done: jfk.flac, 11.0 s"), status
        assert page.locator("#waveform img").count() == 1
        assert page.locator("#answer textarea").input_value() != ""
        page.screenshot(path=str(ARTIFACTS / "audio_qa.png"), full_page=True)

        for bad in (not_audio, empty):
            _clear(page, "audio-upload")
            status = _ask(page, "audio-upload", bad)
            assert "Error" in status and "AudioDecodeError" in status and bad.name in status, status

        _clear(page, "audio-upload")
        status = _ask(page, "audio-upload", DATA / "audio" / "jfk.flac")
        assert status.startswith("Done: "), status
    finally:
        demo.close()
