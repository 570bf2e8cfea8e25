"""Text: byte tokenizer, synthetic passkey retrieval, Lightning module for causal LMs, passkey evaluation."""

from zoo.lazy import lazy_exports

# imported on first use (zoo.lazy): importing the package, or its eval module, imports nothing heavy
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".lightning": ["LMModule", "PasskeyDataModule"],
    ".passkey": ["PasskeySet", "PasskeyStream", "make_passkey_sample"],
})
