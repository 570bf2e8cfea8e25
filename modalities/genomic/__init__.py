"""Genomic and protein sequences: FASTA windows (pyfaidx) and DNA / k-mer / protein tokenizers."""

from .fasta import FastaFormatError, FastaWindows, open_fasta, reverse_complement
from .tokenizers import CharTokenizer, KmerTokenizer, ProteinTokenizer, SequenceTokenizer

__all__ = ["CharTokenizer", "FastaFormatError", "FastaWindows", "KmerTokenizer", "ProteinTokenizer",
           "SequenceTokenizer", "open_fasta", "reverse_complement"]
