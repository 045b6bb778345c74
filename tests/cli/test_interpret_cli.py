"""The interpretation commands end to end on the real DCGAN: evaluate -> label -> traverse by name,
compare, report; their one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from dirfind.bank import DirectionBank
from dirfind.core.evaluation import Evaluation
from helpers import PREDICTORS, one_line_error


@pytest.fixture
def bank(cli, tmp_path):
    assert cli("-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "3", "--out", "b.npz").code == 0
    return tmp_path / "b.npz"


def test_evaluate_label_traverse_by_name(cli, bank, tmp_path):
    pred = f"{PREDICTORS}:face_attributes"
    r = cli(
        "-q",
        "evaluate",
        bank,
        "-n",
        "4",
        "--steps",
        "3",
        "--predictor",
        pred,
        "--out",
        "e.npz",
        "--heatmaps",
        "heat/",
        "--region",
        "0,0,32,64",
    )
    assert r.code == 0, r
    assert r.out.startswith("wrote e.npz") and "in/out" in r.out and "luminance" in r.out
    assert sorted(p.name for p in (tmp_path / "heat").iterdir()) == ["d000.png", "d001.png", "d002.png"]
    ev = Evaluation.load(tmp_path / "e.npz")
    assert ev.dirs == [0, 1, 2] and ev.attributes == ["luminance", "asymmetry"] and ev.run["region"]
    r = cli("-q", "--json", "evaluate", bank, "-n", "2", "--steps", "2", "--dir", "1")
    data = json.loads(r.out)
    assert data["format"] == "dirfind.evaluation" and data["arrays"]["dirs"] == [1]
    r = cli("-q", "label", bank, "--evaluation", "e.npz", "--out", "named.npz", "--min-effect", "0.3")
    assert r.code == 0, r
    named = DirectionBank.load(tmp_path / "named.npz")
    assert [rec["original_name"] for rec in named.info["labels"]] == ["sefa_0", "sefa_1", "sefa_2"]
    name = next(n for n in named.names if not n.startswith("mixed"))
    r = cli(
        "-q",
        "traverse",
        "--bank",
        "named.npz",
        "--dir",
        name.lstrip("+-"),
        "--seeds",
        "0",
        "--steps",
        "3",
        "--annotate",
        "--out",
        "t.png",
    )
    assert r.code == 0 and (tmp_path / "t.png").is_file(), r
    err = one_line_error(cli("traverse", "--bank", "named.npz", "--dir", "nope", "--out", "u.png"), 4)
    assert "no direction is named 'nope'" in err
    err = one_line_error(cli("label", bank, "--evaluation", "e.npz", "--out", bank), 7)
    assert "input bank" in err
    assert DirectionBank.load(bank).names == ["sefa_0", "sefa_1", "sefa_2"]  # untouched


def test_compare_and_report(cli, bank, tmp_path):
    assert (
        cli("-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "3", "--variant", "rosinality", "--out", "r.npz").code == 0
    )
    r = cli("-q", "compare", bank, "r.npz")
    assert r.code == 0 and "principal angles" in r.out, r
    data = json.loads(cli("-q", "--json", "compare", bank, "r.npz", "-k", "2").out)["comparisons"][0]
    assert data["num_a"] == 2 and np.asarray(data["abs_cos"]).shape == (2, 2)
    r = cli("-q", "report", bank, "-n", "2", "--seeds", "0", "--steps", "3", "-o", "atlas")
    assert r.code == 0 and (tmp_path / "atlas" / "index.html").is_file(), r
    assert one_line_error(cli("report", bank, "-n", "2", "-o", "atlas"), 7)


def test_one_line_errors(cli, bank, monkeypatch):
    err = one_line_error(cli("evaluate", bank, "--steps", "1"), 4)
    assert "--steps must be at least 2" in err
    assert one_line_error(cli("evaluate", bank, "--region", "0,0,8,8", "--mask", "m.png"), 4)
    assert "--predictor" in one_line_error(cli("label", bank), 4)
    assert one_line_error(cli("compare", bank), 4)
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter"):  # also when another test imported it
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr("dirfind.core.scorers._FACES", None)
    err = one_line_error(cli("evaluate", bank, "-n", "2", "--predictor", "faces"), 9)
    assert "dirfind[faces]" in err
