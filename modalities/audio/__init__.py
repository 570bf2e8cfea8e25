"""Audio: file loading, Whisper log-mel features, the Qwen2-Audio-shaped model with Partial YaRN / VLAT, the synthetic
audio needle task and audio QA."""

from .features import audio_features, iter_audio_features, log_mel_spectrogram, pad_or_trim, split_windows
from .io import AudioDecodeError, iter_audio_windows, load_audio
from .lightning import AudioNeedleDataModule, AudioQAModule
from .partial_yarn import PartialYarnConfig, partial_yarn_inputs
from .qa import answer
from .qwen2_audio import Qwen2Audio, Qwen2AudioConfig

__all__ = ["AudioDecodeError", "AudioNeedleDataModule", "AudioQAModule", "PartialYarnConfig", "Qwen2Audio",
           "Qwen2AudioConfig", "answer", "audio_features", "iter_audio_features", "iter_audio_windows", "load_audio",
           "log_mel_spectrogram", "pad_or_trim", "partial_yarn_inputs", "split_windows"]
