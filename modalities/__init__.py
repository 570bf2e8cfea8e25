"""Modalities: each subpackage holds one modality's sampler/tokenizer, model families, Lightning module and eval tasks."""
