"""Genomic and protein sequences: FASTA windows (pyfaidx), DNA / k-mer / protein tokenizers, next-token training."""

from .caduceus import Caduceus, CaduceusConfig
from .fasta import FastaFormatError, FastaWindows, open_fasta, reverse_complement
from .lightning import DnaPasskeyDataModule, FastaDataModule, GenomicLMModule, GenomicMLMModule, ProteinDataModule
from .proteins import ProteinRecords, write_synthetic_proteins
from .passkey import DnaPasskeySet, DnaPasskeyStream, make_dna_passkey
from .tokenizers import CharTokenizer, KmerTokenizer, ProteinTokenizer, SequenceTokenizer

__all__ = ["Caduceus", "CaduceusConfig", "CharTokenizer", "DnaPasskeyDataModule", "DnaPasskeySet", "DnaPasskeyStream",
           "make_dna_passkey", "ProteinDataModule", "ProteinRecords", "write_synthetic_proteins", "FastaDataModule", "FastaFormatError", "FastaWindows", "GenomicLMModule", "GenomicMLMModule", "KmerTokenizer", "ProteinTokenizer",
           "SequenceTokenizer", "open_fasta", "reverse_complement"]
