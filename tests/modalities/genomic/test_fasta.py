"""FastaWindows on a real soft-masked sequence (tests/data/genomic/chr17.hg19.part.fa, pyfaidx's test data) and on
small files the tests write: windows equal the file's bases, tiled and random modes, lower case kept or upper-cased,
reverse complement, N-heavy windows skipped and counted, bgzip, several files, and malformed files failing by file,
record and line — never a wrong sequence."""

import shutil
from pathlib import Path

import pytest

from zoo.modalities.genomic import FastaFormatError, FastaWindows, reverse_complement

CHR17 = Path(__file__).resolve().parents[2] / "data" / "genomic" / "chr17.hg19.part.fa"


@pytest.fixture
def chr17(tmp_path):
    path = tmp_path / "chr17.fa"  # a copy: the index is written next to it, not into the repository
    shutil.copy(CHR17, path)
    return path


def _bases(path):
    lines = path.read_text().splitlines()
    return "".join(line for line in lines if not line.startswith(">"))


def test_tiled_windows_are_the_file_bases_in_order(chr17):
    data = FastaWindows(chr17, 1000, mode="tiled", uppercase=False)
    assert len(data) == 40 and data.skipped == 0
    bases = _bases(CHR17)
    assert "".join(data[i]["sequence"] for i in range(len(data))) == bases
    assert any(c.islower() for c in data[5]["sequence"])  # soft-masked repeats kept
    item = data[3]
    assert item["record"] == "chr17" and item["start"] == 3000 and item["strand"] == "+"
    assert item["input_ids"].tolist() == [7 + "ACGTN".index(c) for c in item["sequence"].upper()]
    assert (chr17.parent / "chr17.fa.fai").exists()
    upper = FastaWindows(chr17, 1000, mode="tiled")
    assert upper[5]["sequence"] == data[5]["sequence"].upper()


def test_random_windows_are_reproducible_and_reverse_complemented(chr17):
    data = FastaWindows(chr17, 512, num_samples=20, seed=3)
    a, b = data[7], data[7]
    assert a["sequence"] == b["sequence"] and len(a["sequence"]) == 512
    bases = _bases(CHR17).upper()
    assert bases[a["start"]: a["start"] + 512] == a["sequence"]
    rc = FastaWindows(chr17, 512, num_samples=20, seed=3, reverse_complement="always")[7]
    assert rc["sequence"] == reverse_complement(a["sequence"]) and rc["strand"] == "-"
    mixed = FastaWindows(chr17, 512, num_samples=200, reverse_complement="random")
    strands = {mixed[i]["strand"] for i in range(40)}
    assert strands == {"+", "-"}
    assert reverse_complement("ACGTNacgt") == "acgtNACGT"


def test_n_heavy_windows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "gappy.fa"
    path.write_text(">r1\n" + "ACGT" * 25 + "N" * 100 + "GGCC" * 25 + "\n>tiny\nACG\n")
    data = FastaWindows(path, 50, mode="tiled", max_n_fraction=0.5)
    assert data.skipped == 2 and len(data) == 4  # windows 2 and 3 of 6 are all N; the 3-base record has none
    assert all(d["sequence"].count("N") <= 25 for d in (data[i] for i in range(len(data))))
    rand = FastaWindows(path, 50, num_samples=50, max_n_fraction=0.1)
    assert all(rand[i]["sequence"].count("N") <= 5 for i in range(50)) and rand.skipped > 0
    (tmp_path / "all_n.fa").write_text(">r\n" + "N" * 200 + "\n")
    with pytest.raises(ValueError, match="every window of .*all_n.fa is more than 50% N"):
        FastaWindows(tmp_path / "all_n.fa", 50, mode="tiled")
    with pytest.raises(ValueError, match="no record in .*gappy.fa holds a 1000-base window \\(longest: 300\\)"):
        FastaWindows(path, 1000)


def test_several_files_bgzip_and_crlf(tmp_path):
    from Bio import bgzf

    plain = tmp_path / "a.fa"
    plain.write_text(">x\nACGTACGT\nACGTACGT\nAC\n")
    crlf = tmp_path / "b.fa"
    crlf.write_bytes(b">y\r\nGGGGCCCC\r\nTTTTAAAA\r\n")
    gz = tmp_path / "c.fa.gz"
    with bgzf.BgzfWriter(str(gz), "wb") as w:
        w.write(b">z\nCCCCGGGG\nAAAA\n")
    data = FastaWindows([plain, crlf, gz], 4, mode="tiled")
    by_record: dict[str, list[str]] = {}
    for i in range(len(data)):
        by_record.setdefault(data[i]["record"], []).append(data[i]["sequence"])
    assert {r: "".join(v) for r, v in by_record.items()} == {
        "x": "ACGTACGTACGTACGT", "y": "GGGGCCCCTTTTAAAA", "z": "CCCCGGGGAAAA"}  # 2-base tail of x: no full window
    (tmp_path / "plain.fa.gz").write_bytes(__import__("gzip").compress(b">q\nACGT\n"))
    with pytest.raises(FastaFormatError, match="plain.fa.gz: "):
        FastaWindows(tmp_path / "plain.fa.gz", 2)


@pytest.mark.parametrize("text, line", [
    (">a\nACGTACGT\nACGT\nACGTACGT\n>b\nTTTT\n", 3),   # a short line inside the record
    (">a\nACGTACGT\n\nACGTACGT\n>b\nTTTT\n", 3),       # a blank line inside the record
])
def test_malformed_files_name_file_record_and_line(tmp_path, text, line):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(FastaFormatError, match=rf"bad\.fa: .*>a at line {line}"):
        FastaWindows(path, 4)


def test_read_only_folder_gets_its_index_in_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(CHR17, folder / "chr17.fa")
    folder.chmod(0o555)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    try:
        data = FastaWindows(folder / "chr17.fa", 100, mode="tiled")
        assert len(data) == 400
        assert not (folder / "chr17.fa.fai").exists() and list((tmp_path / "cache" / "fai").glob("*.fai"))
    finally:
        folder.chmod(0o755)
