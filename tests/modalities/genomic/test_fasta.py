"""FastaWindows on a real soft-masked sequence (tests/data/genomic/chr17.hg19.part.fa, pyfaidx's test data) and on
small files the tests write: windows equal the file's bases, tiled and random modes, lower case kept or upper-cased,
reverse complement, N-heavy windows skipped and counted, bgzip, several files (a record name may recur across files),
and malformed or damaged files (a record name used twice, no header, binary data, truncated bgzip) failing in one line
by file, record and line — never a wrong sequence. Where the index goes: test_fasta_index.py."""

import shutil
from pathlib import Path

import pytest

from zoo.modalities.genomic import FastaFormatError, FastaWindows, reverse_complement

CHR17 = Path(__file__).resolve().parents[2] / "data" / "genomic" / "chr17.hg19.part.fa"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))  # the indexes go here, not into the user's cache
    return tmp_path / "cache"


@pytest.fixture
def chr17(tmp_path):
    path = tmp_path / "chr17.fa"
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
    with pytest.raises(FastaFormatError, match=r"plain\.fa\.gz: compressed with plain gzip; recompress with bgzip"):
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


def test_read_only_folder_gets_its_index_in_the_cache(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(CHR17, folder / "chr17.fa")
    folder.chmod(0o555)
    try:
        data = FastaWindows(folder / "chr17.fa", 100, mode="tiled")
        assert len(data) == 400
        assert not (folder / "chr17.fa.fai").exists() and list((tmp_path / "cache" / "fai").glob("*.fai"))
    finally:
        folder.chmod(0o755)


def _bgzip(path, data: bytes):
    from Bio import bgzf

    with bgzf.BgzfWriter(str(path), "wb") as w:
        w.write(data)
    return path


def _random_bases(n, seed=0):
    import random

    rng = random.Random(seed)  # incompressible enough to span several BGZF blocks
    seq = "".join(rng.choice("ACGT") for _ in range(n))
    return "\n".join(seq[i: i + 60] for i in range(0, n, 60)) + "\n"


DUPLICATED = b">a first\nACGT\n>b\nGGGG\n>a again\nTTTT\n"


@pytest.mark.parametrize("name, write, message", [
    ("dup.fa", lambda p: p.write_bytes(DUPLICATED),
     r"dup\.fa: record name 'a' is used twice \(headers at lines 1 and 5\); record names must be unique within a "
     r"file$"),
    ("dup.fa.gz", lambda p: _bgzip(p, DUPLICATED),
     r"dup\.fa\.gz: record name 'a' is used twice \(headers at lines 1 and 5\)"),
    ("empty.fa", lambda p: p.write_bytes(b""), r"empty\.fa is empty$"),
    ("comments.fa", lambda p: p.write_bytes(b";just a comment\n\n"),
     r"comments\.fa holds no FASTA record \(no line starts with '>'\)$"),
    ("bases.fa", lambda p: p.write_bytes(b"ACGTACGT\nACGT\n"),
     r"bases\.fa, line 1: text before the first '>' header; a FASTA file starts with a '>name' line"),
    ("nameless.fa", lambda p: p.write_bytes(b">a\nACGT\n>\nACGT\n"),
     r"nameless\.fa, line 3: a '>' header without a record name$"),
    ("image.fa", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"),
     r"image\.fa, line 1: bytes that are not text; is this a FASTA file\?$"),
    ("binary_body.fa", lambda p: p.write_bytes(b">x\nACGT\n" + bytes([0xff, 0xfe, 0x00, 0x81]) * 10 + b"\n"),
     r"binary_body\.fa, line 3: bytes that are not text"),
    ("half.fa.gz", lambda p: p.write_bytes(_bgzip(p, (">z\n" + _random_bases(200_000)).encode()).read_bytes()[
        :30_000]), r"half\.fa\.gz: truncated or damaged bgzip file \(.+\)$"),
    ("garbage.fa.gz", lambda p: p.write_bytes(bytes(range(7, 256)) * 4),
     r"garbage\.fa\.gz: named like a bgzip file but not gzip-compressed at all \(damaged, or misnamed\?\)$"),
    ("x.fa.bz2", lambda p: p.write_bytes(__import__("bz2").compress(b">q\nACGT\n")),
     r"x\.fa\.bz2: pyfaidx reads compressed FASTA only as bgzip \(\.gz, \.bgz\); recompress with bgzip$"),
    ("no_eof.fa.gz", lambda p: p.write_bytes(_bgzip(p, (">z\n" + _random_bases(200_000)).encode()).read_bytes()[
        :-28]), r"no_eof\.fa\.gz: truncated or damaged bgzip file \(BGZF EOF marker not found"),
])
def test_damaged_files_fail_in_one_line_naming_the_file(tmp_path, _cache, name, write, message):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / name)
    with pytest.raises(FastaFormatError, match=message) as error:
        FastaWindows(folder / name, 4)
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in folder.iterdir()) == [name]
    assert not list(_cache.glob("fai/*"))  # no half-built index is left to be trusted on the next open


def test_record_names_may_recur_across_files(tmp_path):
    from zoo.modalities.genomic import ProteinRecords

    (tmp_path / "a.fa").write_text(">chr1\nACGTACGT\n>chrA\nAAAA\n")
    (tmp_path / "b.fa").write_text(">chr1\nTTTTGGGG\n")
    data = FastaWindows([tmp_path / "a.fa", tmp_path / "b.fa"], 8, mode="tiled")
    assert [(Path(data[i]["file"]).name, data[i]["record"], data[i]["sequence"]) for i in range(len(data))] == [
        ("a.fa", "chr1", "ACGTACGT"), ("b.fa", "chr1", "TTTTGGGG")]

    (tmp_path / "p.fa").write_text(">P5\nMKTAYIAK\n>P1\nMLLA\n")
    (tmp_path / "q.fa").write_text(">P5\nMQQQ\n")
    files = [tmp_path / "p.fa", tmp_path / "q.fa"]
    val, train = (ProteinRecords(files, 64, split, val_fraction=0.5) for split in ("val", "train"))
    # the split hashes the name, so both P5 are held out together: one protein is never on both sides
    assert val.records == [(0, "P5"), (1, "P5")] and train.records == [(0, "P1")]
    assert [val.tokenizer.decode(val[i]["input_ids"]) for i in range(2)] == ["MKTAYIAK", "MQQQ"]
