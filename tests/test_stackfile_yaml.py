"""The stack file's YAML reading refuses what the CLI's parser refuses, with the line named: explicit tags whose
content is not of the tag's form, nodes that contain themselves, and aliases that expand without bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.offline.stackfile import MAX_EXPANDED_NODES, StackFileError, read_stack_file


def _read(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n" + body)
    return read_stack_file("x", path).values


@pytest.mark.parametrize(("value", "kind"), [
    ("!!int abc", "int"), ("!!int 1.5", "int"), ("!!bool maybe", "bool"), ("!!bool yes", "bool"),
    ("!!float x", "float"), ("!!float 1e", "float"), ("!!null 3", "null"),
])
def test_an_explicit_tag_with_content_not_of_its_form_is_refused_with_its_line(tmp_path: Path, value: str,
                                                                                kind: str) -> None:
    with pytest.raises(StackFileError, match=rf"akidb-observability:b: .* is not a valid !!{kind} \(line 3\)"):
        _read(tmp_path, f"  akidb-observability:a: 1\n  akidb-observability:b: {value}\n")


@pytest.mark.parametrize(("value", "expected"), [
    ("!!int 0x1F", "31"), ("!!int -7", "-7"), ("!!bool false", "false"), ("!!float .5", "0.5"), ("!!null ~", "null"),
    ("!!str 12", "12"),
])
def test_an_explicit_tag_of_the_right_form_reads_as_the_cli_reads_it(tmp_path: Path, value: str,
                                                                      expected: str) -> None:
    assert _read(tmp_path, f"  akidb-observability:a: {value}\n")["akidb-observability:a"] == expected


def test_nested_aliases_that_expand_without_bound_are_refused_at_once(tmp_path: Path) -> None:
    lines = ["  akidb-observability:x:", "    l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 12)]
    start = time.process_time()
    with pytest.raises(StackFileError, match=f"expand to more than {MAX_EXPANDED_NODES:,} values"):
        _read(tmp_path, "\n".join(lines) + "\n")
    print(f"refused in {time.process_time() - start:.3f} s CPU")


def test_a_node_that_contains_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="contains itself"):
        _read(tmp_path, "  akidb-observability:x: &a [*a]\n")


def test_aliases_within_the_bound_still_read(tmp_path: Path) -> None:
    values = _read(tmp_path, "  akidb-observability:x: &a {k: 1}\n  akidb-observability:y: *a\n")
    assert values["akidb-observability:y"] == values["akidb-observability:x"] == '{"k": 1}'


def test_a_bad_tag_inside_a_list_names_its_key_path(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match=r"akidb-observability:s\.asgs\[1\]: 'abc' is not a valid !!int"):
        _read(tmp_path, "  akidb-observability:s:\n    asgs: [a, !!int abc]\n")
