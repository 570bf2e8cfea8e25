"""Where the FASTA index goes: into the cache by default (nothing new next to the user's file), next to the file only
when asked; an index already next to the file (samtools faidx) is read, never rewritten; a FASTA rewritten in place —
even one given back an older mtime — gets a new index, so the sequences read are always the file's."""

import os
import shutil
from pathlib import Path

import pytest

from zoo.modalities.genomic import FastaWindows, ProteinRecords, open_fasta

CHR17 = Path(__file__).resolve().parents[2] / "data" / "genomic" / "chr17.hg19.part.fa"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fai"


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


def _listing(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _read(path, **kwargs):
    fasta = open_fasta(path, **kwargs)
    return {name: str(fasta[name][:]) for name in fasta.keys()}


def test_indexes_go_to_the_cache_and_nothing_is_written_next_to_the_fasta(folder, cache):
    from Bio import bgzf

    shutil.copy(CHR17, folder / "chr17.fa")
    with bgzf.BgzfWriter(str(folder / "small.fa.gz"), "wb") as w:
        w.write(b">z\nCCCCGGGG\nAAAA\n")
    before = _listing(folder)
    data = FastaWindows([folder / "chr17.fa", folder / "small.fa.gz"], 4, mode="tiled")
    assert len(data) == 10_000 + 3
    assert _listing(folder) == before
    assert sorted(p.suffix for p in cache.iterdir()) == [".fai", ".fai", ".gzi"]
    assert all(p.name.startswith(("chr17.fa.", "small.fa.gz.")) for p in cache.iterdir())
    proteins = folder / "p.fa"
    proteins.write_text(">P1\nMKTAYIAK\n")
    before = _listing(folder)
    assert len(ProteinRecords(proteins, 64, "train", val_fraction=0.0)) == 1
    assert _listing(folder) == before and len(list(cache.glob("p.fa.*.fai"))) == 1


def test_index_next_to_the_fasta_when_asked(folder, cache):
    shutil.copy(CHR17, folder / "chr17.fa")
    data = FastaWindows(folder / "chr17.fa", 1000, mode="tiled", index_next_to_fasta=True)
    assert len(data) == 40
    assert sorted(p.name for p in folder.iterdir()) == ["chr17.fa", "chr17.fa.fai"]
    assert not cache.exists() or not list(cache.iterdir())
    proteins = folder / "p.fa"
    proteins.write_text(">P1\nMKTAYIAK\n")
    ProteinRecords(proteins, 64, "train", val_fraction=0.0, index_next_to_fasta=True)
    assert (folder / "p.fa.fai").is_file()


def test_index_next_to_the_fasta_in_a_read_only_folder_is_refused(folder, cache):
    shutil.copy(CHR17, folder / "chr17.fa")
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r"chr17\.fa: cannot write its index next to it \(.*data is "
                                                  r"read-only\); leave index_next_to_fasta False"):
            open_fasta(folder / "chr17.fa", index_next_to_fasta=True)
        assert len(_read(folder / "chr17.fa")["chr17"]) == 40_000  # by default the cache takes the index
    finally:
        folder.chmod(0o755)


def test_a_rewritten_fasta_gets_a_new_index(folder, cache):
    path = folder / "x.fa"
    path.write_text(">a\nACGTACGTACGT\nAC\n>b\nGGGG\n")
    assert _read(path) == {"a": "ACGTACGTACGTAC", "b": "GGGG"}
    first_mtime = path.stat().st_mtime
    path.write_text(">a\nACGTACGT\n>b\nGG\n")  # another size
    assert _read(path) == {"a": "ACGTACGT", "b": "GG"}
    # the same size, other record lengths, and an mtime older than the index: pyfaidx alone would keep the old one
    path.write_text(">a\nAC\n>b\nGGGGTTTT\n")
    os.utime(path, (first_mtime - 100, first_mtime - 100))
    assert _read(path) == {"a": "AC", "b": "GGGGTTTT"}
    assert len(list(cache.glob("x.fa.*.fai"))) == 1  # the indexes of the earlier versions are dropped
    assert sorted(p.name for p in folder.iterdir()) == ["x.fa"]


def test_an_index_already_next_to_the_fasta_is_read_and_never_rewritten(folder, cache):
    path = folder / "x.fa"
    path.write_text(">a\nACGTACGT\nACGT\n>b\nGG\n")
    # what samtools faidx writes for it: name, length, offset of the first base, bases per line, bytes per line
    index = folder / "x.fa.fai"
    index.write_text("a\t12\t3\t8\t9\nb\t2\t20\t2\t3\n")
    os.utime(path, (index.stat().st_mtime - 10,) * 2)
    assert _read(path) == {"a": "ACGTACGTACGT", "b": "GG"}
    assert not cache.exists() or not list(cache.iterdir())
    path.write_text(">a\nTTTT\n>b\nCCCCCCCC\n")  # now newer than its index: the index is stale, and is left alone
    os.utime(path, (index.stat().st_mtime + 10,) * 2)
    assert _read(path) == {"a": "TTTT", "b": "CCCCCCCC"}
    assert index.read_text() == "a\t12\t3\t8\t9\nb\t2\t20\t2\t3\n"
    assert len(list(cache.glob("x.fa.*.fai"))) == 1
