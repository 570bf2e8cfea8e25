"""Video: frame sampling (decord / PyAV), LongVA (CLIP tower + mlp2x_gelu projector + Qwen2 LM, V2PE positions),
synthetic V-NIAH, and video QA (``answer``)."""

from zoo.lazy import lazy_exports

# imported on first use (zoo.lazy): importing the package, or its eval module, imports nothing heavy
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".frames": ["VideoDecodeError", "read_frames", "sample_indices"],
    ".lightning": ["LongVAModule", "VNIAHDataModule"],
    ".longva": ["IMAGE_TOKEN_INDEX", "LongVA", "LongVAConfig", "preprocess_frames", "v2pe_positions"],
    ".qa": ["answer"],
})
