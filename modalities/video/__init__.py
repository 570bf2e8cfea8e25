"""Video: frame sampling (decord / PyAV), LongVA (CLIP tower + mlp2x_gelu projector + Qwen2 LM, V2PE positions),
synthetic V-NIAH, and video QA (``answer``)."""

from .frames import VideoDecodeError, read_frames, sample_indices
from .lightning import LongVAModule, VNIAHDataModule
from .longva import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig, preprocess_frames, v2pe_positions
from .qa import answer

__all__ = ["IMAGE_TOKEN_INDEX", "LongVA", "LongVAConfig", "LongVAModule", "VNIAHDataModule", "VideoDecodeError", "answer",
           "preprocess_frames", "read_frames", "sample_indices", "v2pe_positions"]
