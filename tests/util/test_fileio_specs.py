"""Atomic outputs and index specs."""

from __future__ import annotations

import pytest

from dirfind.errors import BadInputError, OutputError
from dirfind.util.fileio import atomic_dir, atomic_path, sha256_path
from dirfind.util.specs import parse_indices


def test_failed_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, force=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_replaces_only_with_force(tmp_path):
    target = tmp_path / "frames"
    with atomic_dir(target) as tmp:
        (tmp / "a.png").write_text("1")
    with pytest.raises(OutputError, match="force=True"):
        with atomic_dir(target):
            pass
    with atomic_dir(target, force=True) as tmp:
        (tmp / "b.png").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_folder_hash_depends_on_names_and_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("1")
    h1 = sha256_path(tmp_path / "a")
    (tmp_path / "a" / "x").write_text("2")
    assert sha256_path(tmp_path / "a") != h1


@pytest.mark.parametrize(
    "spec, n, expected",
    [("3", None, [3]), ("0-3", None, [0, 1, 2, 3]), ("0,2,7-9", None, [0, 2, 7, 8, 9]), ("all", 4, [0, 1, 2, 3]),
     ("2-5", 14, [2, 3, 4, 5]), ("1,1,2", None, [1, 2]), ("-1", None, [-1])],
)  # fmt: skip
def test_parse_indices(spec, n, expected):
    assert parse_indices(spec, n) == expected


@pytest.mark.parametrize(
    "spec, n", [("all", None), ("a-b", None), ("5-2", None), ("", None), ("0-20", 14), ("1,,2", 5)]
)
def test_parse_indices_errors(spec, n):
    with pytest.raises(BadInputError):
        parse_indices(spec, n)
