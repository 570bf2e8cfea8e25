"""Sequence parallelism (ring, Ulysses, 2D hybrid, modality-aware MM-SP). Built on ``zoo.kernels.attention``'s
log-sum-exp outputs and ``merge_attention_partials``; see the sequence-parallelism issue."""
