"""Audio: file loading, Whisper log-mel features, the Qwen2-Audio-shaped model with Partial YaRN / VLAT, the synthetic
audio needle task and audio QA."""

from zoo.lazy import lazy_exports

# imported on first use (zoo.lazy): importing the package, or its eval module, imports nothing heavy
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".features": ["audio_features", "iter_audio_features", "log_mel_spectrogram", "pad_or_trim", "split_windows"],
    ".io": ["AudioDecodeError", "iter_audio_windows", "load_audio"],
    ".lightning": ["AudioNeedleDataModule", "AudioQAModule"],
    ".partial_yarn": ["PartialYarnConfig", "partial_yarn_inputs"],
    ".qa": ["answer"],
    ".qwen2_audio": ["Qwen2Audio", "Qwen2AudioConfig"],
})
