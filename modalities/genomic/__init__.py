"""Genomic and protein sequences: FASTA windows (pyfaidx), DNA / k-mer / protein tokenizers, next-token training."""

from .caduceus import Caduceus, CaduceusConfig
from .fasta import FastaFormatError, FastaWindows, open_fasta, reverse_complement
from .lightning import FastaDataModule, GenomicLMModule, GenomicMLMModule
from .tokenizers import CharTokenizer, KmerTokenizer, ProteinTokenizer, SequenceTokenizer

__all__ = ["Caduceus", "CaduceusConfig", "CharTokenizer", "FastaDataModule", "FastaFormatError", "FastaWindows", "GenomicLMModule", "GenomicMLMModule", "KmerTokenizer", "ProteinTokenizer",
           "SequenceTokenizer", "open_fasta", "reverse_complement"]
