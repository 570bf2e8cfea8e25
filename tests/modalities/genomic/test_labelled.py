"""Downstream data in the benchmarks' own layouts: GenomicBenchmarks folders, Nucleotide Transformer tables (CSV,
Parquet), FASTA with the label in the header, TSV; every error names the file and line; nothing is skipped."""

from __future__ import annotations

import csv

import pytest

from zoo.modalities.genomic.labelled import (LabelledDataError, fit_length, read_labelled, validation_split)


def genomic_benchmarks(root, split="train", classes=None):
    classes = classes or {"positive": ["ACGT", "GGCC"], "negative": ["TTAA"]}
    for name, seqs in classes.items():
        (root / split / name).mkdir(parents=True)
        for i, s in enumerate(seqs):
            (root / split / name / f"{i}.txt").write_text(s + "\n")
    return root


def test_genomic_benchmarks_classes_are_sorted_by_name_and_records_keep_file_order(tmp_path):
    data = read_labelled(genomic_benchmarks(tmp_path))
    assert data.classes == ["negative", "positive"] and data.n_classes == 2
    assert data.sequences == ["TTAA", "ACGT", "GGCC"] and data.labels == [0, 1, 1]
    assert data.where[0] == f"{tmp_path / 'train' / 'negative' / '0.txt'}:1"


def test_genomic_benchmarks_errors_name_the_file(tmp_path):
    genomic_benchmarks(tmp_path, classes={"a": ["ACGT"], "b": ["AC\nGT"]})
    with pytest.raises(LabelledDataError, match=r"b/0\.txt:1: expected one sequence per file, found 2 lines"):
        read_labelled(tmp_path)
    (tmp_path / "test" / "empty_class").mkdir(parents=True)
    with pytest.raises(LabelledDataError, match=r"empty_class: a class folder without \.txt files"):
        read_labelled(tmp_path, "test")


def write_csv(path, rows, header=("sequence", "label", "name")):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_nucleotide_transformer_tables_csv_and_parquet_read_the_same(tmp_path):
    rows = [("ACGT", 1, "r1"), ("NNAC", 0, "r2")]
    write_csv(tmp_path / "train.csv", rows)
    data = read_labelled(tmp_path)
    assert data.sequences == ["ACGT", "NNAC"] and data.labels == [1, 0] and data.names == ["r1", "r2"]
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"sequence": ["ACGT", "NNAC"], "label": [1, 0]}), tmp_path / "test.parquet")
    table = read_labelled(tmp_path, "test")
    assert table.sequences == data.sequences and table.labels == data.labels


@pytest.mark.parametrize("rows, header, message", [
    ([("ACGT", "x", "a")], ("sequence", "label", "name"), r"t\.csv:2: label 'x' is not a class id ≥ 0"),
    ([("ACGT", "1", "a"), ("", "0", "b")], ("sequence", "label", "name"), r"t\.csv:3: empty sequence"),
    ([("ACGX", "1", "a")], ("sequence", "label", "name"), r"t\.csv:2: characters 'X' are not in the alphabet"),
    ([("ACGT", "1")], ("seq", "label"), r"t\.csv: no sequence column \(columns: seq, label\)"),
])
def test_table_errors_name_the_file_and_line(tmp_path, rows, header, message):
    with pytest.raises(LabelledDataError, match=message):
        read_labelled(write_csv(tmp_path / "t.csv", rows, header))


def test_regression_labels_are_floats_and_must_be_finite(tmp_path):
    data = read_labelled(write_csv(tmp_path / "r.csv", [("ACGT", "0.5", "a")]), task="regression")
    assert data.labels == [0.5] and data.n_classes is None
    with pytest.raises(LabelledDataError, match=r"r2\.csv:2: label 'nan' is not a finite number"):
        read_labelled(write_csv(tmp_path / "r2.csv", [("ACGT", "nan", "a")]), task="regression")


def test_fasta_with_label_in_the_header_joins_wrapped_lines(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">chr1:10-20|1\nACGT\nACGT\n\n>id|with|bars|0\nTT\n")
    data = read_labelled(path)
    assert data.sequences == ["ACGTACGT", "TT"] and data.labels == [1, 0]
    assert data.names == ["chr1:10-20", "id|with|bars"] and data.where == [f"{path}:1", f"{path}:5"]
    path.write_text(">a|1\nAC\n>b\nGT\n")
    with pytest.raises(LabelledDataError, match=r"x\.fa:3: header '>b' has no '\|label'"):
        read_labelled(path)
    path.write_text("ACGT\n>a|1\nAC\n")
    with pytest.raises(LabelledDataError, match=r"x\.fa:1: sequence before the first '>' header"):
        read_labelled(path)


def test_tsv_with_or_without_header(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("sequence\tlabel\nACGT\t1\nGG\t0\n")
    assert read_labelled(path).labels == [1, 0]
    path.write_text("ACGT\t1\nGG 0\n")
    with pytest.raises(LabelledDataError, match=r"x\.tsv:2: expected 'sequence<TAB>label', found 1"):
        read_labelled(path)


def test_validation_split_is_seeded_disjoint_and_keeps_order(tmp_path):
    data = read_labelled(write_csv(tmp_path / "t.csv", [("ACGT"[: 1 + i % 4], i % 2, str(i)) for i in range(50)]))
    train, val = validation_split(data, 0.1, seed=3)
    again, val_again = validation_split(data, 0.1, seed=3)
    assert val.names == val_again.names and len(val) == 5 and len(train) == 45
    assert sorted(train.names + val.names, key=int) == data.names
    assert [int(n) for n in val.names] == sorted(int(n) for n in val.names)
    assert validation_split(data, 0.1, seed=4)[1].names != val.names


def test_longer_than_max_len_is_an_error_unless_a_side_is_named():
    with pytest.raises(LabelledDataError, match=r"f\.tsv:3: sequence of 6 bases is longer than max_len 4; set "
                                                 r"truncate: left, right or center"):
        fit_length("AACCGG", 4, None, "f.tsv:3")
    assert [fit_length("AACCGG", 4, side, "x") for side in ("left", "right", "center")] == ["CCGG", "AACC", "ACCG"]
    assert fit_length("ACG", 4, None, "x") == "ACG"
