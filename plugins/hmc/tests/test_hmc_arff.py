"""The ARFF parser on small files written here: every format corner, and one clear error per bad file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hmc_testing import DAG_HEADER, TREE_HEADER
from hmlc_hmc.arff import read_arff, read_header
from hmlc_hmc.hierarchy import excluded_labels, header_graph

from hmlc.errors import DataError

Writer = Callable[..., Path]

TREE_ROWS = [
    "1.5,red,-2,01/01/03",
    "% a comment between rows",
    "",
    "?,blue,0.25,02/05@01",
    "3,?,?,01/01@02",
]


def test_tree_header_labels_edges_and_features(arff_writer: Writer) -> None:
    header = read_header(arff_writer("t.arff", TREE_HEADER + TREE_ROWS))
    assert header.form == "tree" and header.relation == "tiny" and header.class_name == "class"
    assert header.labels == ("root", "01", "01/01", "01/01/03", "02", "02/05")
    assert set(header.edges) == {("root", "01"), ("01", "01/01"), ("01/01", "01/01/03"), ("root", "02"), ("02", "02/05")}
    assert header.feature_names == ("x1", "colour=red", "colour=green", "colour=blue", "x 2")
    assert header.declared == header.labels[1:]
    graph = header_graph(header, name="tiny")
    assert graph.roots == ("root",) and graph.parents("01/01/03") == ("01/01",)
    assert excluded_labels(graph) == ("root",)


def test_tree_rows_features_labels_and_lines(arff_writer: Writer) -> None:
    arff = read_arff(arff_writer("t.arff", TREE_HEADER + TREE_ROWS))
    nan = np.nan
    expected = np.array(
        [[1.5, 1, 0, 0, -2], [nan, 0, 0, 1, 0.25], [3, 0, 0, 0, nan]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(arff.features, expected)
    assert arff.features.dtype == np.float32
    # A path implies its prefixes and the root.
    #                      root 01 01/01 01/01/03 02 02/05
    expected_labels = [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 1], [1, 1, 1, 0, 1, 0]]
    np.testing.assert_array_equal(arff.labels, np.array(expected_labels, dtype=np.uint8))
    assert arff.labels.dtype == np.uint8
    assert arff.lines.tolist() == [9, 12, 13]


def test_missing_nominal_as_nan(arff_writer: Writer) -> None:
    arff = read_arff(arff_writer("t.arff", TREE_HEADER + TREE_ROWS), nominal_missing="nan")
    assert np.isnan(arff.features[2, 1:4]).all() and not np.isnan(arff.features[1, 1:4]).any()


def test_dag_labels_with_every_ancestor(arff_writer: Writer) -> None:
    path = arff_writer("g.arff", DAG_HEADER + ["1,d", "2,a@b", "3,c"])
    arff = read_arff(path)
    header = arff.header
    assert header.form == "dag" and header.labels == ("root", "a", "b", "c", "d")
    graph = header_graph(header)
    assert graph.parents("c") == ("a", "b") and len(graph.edges) == 5
    #                      root a b c d
    expected = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    np.testing.assert_array_equal(arff.labels, np.array(expected, dtype=np.uint8))


def test_go_roots_are_excluded(arff_writer: Writer) -> None:
    lines = [
        "@ATTRIBUTE f numeric",
        "@ATTRIBUTE class hierarchical root/GO0003674,root/GO0008150,GO0003674/GO1,GO0008150/GO2",
        "@DATA",
        "1,GO1@GO2",
    ]
    graph = header_graph(read_header(arff_writer("go.arff", lines)))
    assert excluded_labels(graph) == ("root", "GO0003674", "GO0008150")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("name", ["t.arff", "t.arff.gz"])
def test_plain_gzip_and_line_endings_read_alike(arff_writer: Writer, name: str, newline: str) -> None:
    reference = read_arff(arff_writer("ref.arff", TREE_HEADER + TREE_ROWS))
    arff = read_arff(arff_writer(name, TREE_HEADER + TREE_ROWS, newline=newline))
    np.testing.assert_array_equal(arff.features, reference.features)
    np.testing.assert_array_equal(arff.labels, reference.labels)
    assert arff.header.labels == reference.header.labels


@pytest.mark.parametrize("quote", ["'", '"'])
def test_quoted_values_names_and_categories(arff_writer: Writer, quote: str) -> None:
    q = quote
    lines = [
        f"@ATTRIBUTE {q}a b{q} numeric",
        f"@ATTRIBUTE kind {{{q}x y{q},z}}",
        "@ATTRIBUTE class hierarchical 01,01/02",
        "@DATA",
        f"{q}1.5{q},{q}x y{q},{q}01/02{q}",
        f"2, z, 01 % a trailing comment",
    ]
    arff = read_arff(arff_writer("q.arff", lines))
    assert arff.header.feature_names == ("a b", "kind=x y", "kind=z")
    np.testing.assert_array_equal(arff.features, np.array([[1.5, 1, 0], [2, 0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(arff.labels, np.array([[1, 1, 1], [1, 1, 0]], dtype=np.uint8))


def test_header_keywords_in_any_case(arff_writer: Writer) -> None:
    lines = ["@relation r", "@attribute f NUMERIC", "@attribute i integer", "@attribute class HIERARCHICAL 1,1/2", "@data", "1,2,1/2"]
    arff = read_arff(arff_writer("c.arff", lines))
    assert arff.features.tolist() == [[1.0, 2.0]] and arff.labels.tolist() == [[1, 1, 1]]


BAD_FILES = {
    "too many values": (TREE_HEADER + ["1,red,2,3,01"], 9, "5 values; expected 4"),
    "too few values": (TREE_HEADER + ["1,red,2,01", "1,01"], 10, "2 values; expected 4"),
    "not a number": (TREE_HEADER + ["1,red,2,01", "1,red,abc,01"], 10, "'x 2' holds 'abc'"),
    "unknown category": (TREE_HEADER + ["1,purple,2,01"], 9, "'colour' holds 'purple'"),
    "unknown label": (TREE_HEADER + ["1,red,2,01", "1,red,2,01/07"], 10, "label '01/07' is not a node"),
    "root as a label": (TREE_HEADER + ["1,red,2,root"], 9, "label 'root' is not a node"),
    "no labels": (TREE_HEADER + ["1,red,2,?"], 9, "has no labels"),
    "sparse row": (TREE_HEADER + ["{0 1, 3 01}"], 9, "sparse ARFF rows"),
    "string attribute": (["@ATTRIBUTE s string", *TREE_HEADER[6:], "a,01"], 1, "type 'string'"),
    "undeclared parent": (["@ATTRIBUTE f numeric", "@ATTRIBUTE class hierarchical 01,02/01", "@DATA"], 2, "parent '02'"),
    "class not last": (["@ATTRIBUTE class hierarchical 01", "@ATTRIBUTE f numeric", "@DATA"], 2, "must be the last"),
    "no class": (["@ATTRIBUTE f numeric", "@DATA", "1"], 2, "no 'hierarchical' class attribute"),
    "bad header line": (["@ATTRIBUTE f numeric", "hello", "@DATA"], 2, "unexpected header line"),
    "tree node named root": (["@ATTRIBUTE f numeric", "@ATTRIBUTE class hierarchical root,root/a", "@DATA"], 2, "named 'root'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_one_line_naming_file_and_line(arff_writer: Writer, case: str) -> None:
    lines, line, fragment = BAD_FILES[case]
    path = arff_writer("bad.arff", lines)
    with pytest.raises(DataError) as info:
        read_arff(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, line {line}: "), message
    assert fragment in message, message


def test_truncated_and_missing_files(arff_writer: Writer, tmp_path: Path) -> None:
    path = arff_writer("cut.arff", TREE_HEADER[:5])
    with pytest.raises(DataError, match=r"cut\.arff: no @DATA line"):
        read_arff(path)
    empty = arff_writer("empty.arff", TREE_HEADER)
    with pytest.raises(DataError, match=r"no data rows after @DATA \(line 8\)"):
        read_arff(empty)
    with pytest.raises(DataError, match="does not exist"):
        read_arff(tmp_path / "absent.arff")
    broken = tmp_path / "broken.arff.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not gzip at all")
    with pytest.raises(DataError, match=r"cannot read ARFF file .*broken\.arff\.gz"):
        read_arff(broken)


def test_dag_with_a_cycle_is_a_data_error(arff_writer: Writer) -> None:
    path = arff_writer("cyc.arff", ["@ATTRIBUTE f numeric", "@ATTRIBUTE class hierarchical root/a,a/b,b/a", "@DATA", "1,a"])
    with pytest.raises(DataError, match="cycle"):
        read_arff(path)
    with pytest.raises(DataError, match=r"cyc\.arff: the hierarchical class attribute is not a valid hierarchy.*cycle"):
        header_graph(read_header(path))
