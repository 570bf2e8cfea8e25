"""Genomic and protein sequences: FASTA windows (pyfaidx), DNA / k-mer / protein tokenizers, next-token training."""

from zoo.lazy import lazy_exports

# imported on first use (zoo.lazy): importing the package, or its eval module, imports nothing heavy
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".caduceus": ["Caduceus", "CaduceusConfig"],
    ".downstream": ["SequenceClassifier"],
    ".fasta": ["FastaFormatError", "FastaWindows", "open_fasta", "reverse_complement"],
    ".finetune": ["LabelledDataModule", "SequenceTaskModule"],
    ".labelled": ["LabelledDataError", "LabelledSequences", "read_labelled", "validation_split"],
    ".lightning": ["DnaPasskeyDataModule", "FastaDataModule", "GenomicLMModule", "GenomicMLMModule",
        "ProteinDataModule"],
    ".proteins": ["ProteinRecords", "write_synthetic_proteins"],
    ".passkey": ["DnaPasskeySet", "DnaPasskeyStream", "make_dna_passkey"],
    ".tokenizers": ["CharTokenizer", "KmerTokenizer", "ProteinTokenizer", "SequenceTokenizer"],
})
