"""Tests of ``load_peterson_barney``, the Peterson & Barney (1952) vowel table.

The shipped file is checked by its SHA-256 and, where praat-parselmouth is
installed (a test dependency, GPL-3; not needed by hmexperts itself), value
by value against Praat's table, its source. The rest checks the loader: the
shape, names and dtypes, the speakers, the selections of vowels and
formants, the orders of rows shared with ``make_vowels``, splits by speaker,
and the facts that the data's README states.
"""

import csv
import hashlib
import io
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from hmexperts import datasets
from hmexperts.datasets import load_peterson_barney, make_vowels

# SHA-256 of hmexperts/data/peterson_barney.csv as Praat 6.1.38
# (praat-parselmouth 0.4.7) saved it; also in hmexperts/data/README.rst.
SHA256 = "635e3c9acd76835c1a55b5f58c6f003e3b0764add9e5707018a92cb5dc2262e2"
ALL_VOWELS = ["IY", "IH", "EH", "AE", "AA", "AO", "UH", "UW", "AH", "ER"]
FORMANTS = ["F0", "F1", "F2", "F3"]
GIRLS = {62, 63, 65, 66, 67, 68, 73, 76}


def _file():
    return datasets._data_file("peterson_barney.csv")


@pytest.fixture(scope="module")
def full():
    return load_peterson_barney(formants=FORMANTS)


def test_checksum_of_the_shipped_file():
    assert hashlib.sha256(_file().read_bytes()).hexdigest() == SHA256


def test_file_equals_praats_table():
    parselmouth = pytest.importorskip(
        "parselmouth",
        reason="praat-parselmouth (the 'test' extra) is not installed, so the "
        "shipped table is not compared with Praat's; the checksum test still "
        "pins the file",
    )
    table = parselmouth.praat.call("Create formant table (Peterson & Barney 1952)")
    assert parselmouth.praat.call(table, "Get number of rows") == 1520
    # Praat's own listing of the table (tab-separated), not its CSV writer.
    listing = parselmouth.praat.call(table, "List", False)
    praat = [line.split("\t") for line in listing.splitlines()]
    shipped = list(csv.reader(io.StringIO(_file().read_text(encoding="utf-8"))))
    assert len(shipped) == len(praat) == 1521
    assert shipped[0] == praat[0] == datasets._PB_COLUMNS
    rows = zip(shipped[1:], praat[1:], strict=True)
    for number, (ours, theirs) in enumerate(rows, start=1):
        assert len(ours) == len(theirs) == 9, number
        assert ours[:5] == theirs[:5], number
        assert [float(v) for v in ours[5:]] == [float(v) for v in theirs[5:]], number
    # One cell through Praat's query, as a check on the listing.
    assert parselmouth.praat.call(table, "Get value", 1520, "F3") == "2200"


def test_bunch(full):
    pb = load_peterson_barney()
    assert set(pb) == {
        "data",
        "target",
        "target_names",
        "feature_names",
        "speaker",
        "group",
        "sex",
        "repetition",
        "frame",
        "DESCR",
    }
    assert pb.data.shape == (1520, 2)
    assert pb.data.dtype == np.float64 and pb.data.flags.c_contiguous
    assert pb.feature_names == ["F1", "F2"]
    assert pb.target_names.tolist() == ALL_VOWELS
    for name in ("target", "speaker", "repetition"):
        assert pb[name].shape == (1520,) and pb[name].dtype == np.int64, name
    for name in ("group", "sex"):
        assert pb[name].shape == (1520,) and pb[name].dtype.kind == "U", name
    assert sorted(Counter(pb.target.tolist()).items()) == [(k, 152) for k in range(10)]
    assert pb.frame is None
    assert "Peterson & Barney (1952)" in pb.DESCR and "unclear" in pb.DESCR
    assert SHA256 in pb.DESCR
    # speaker 1 (a man), first token of heed: 160, 240, 2280, 2850 Hz
    np.testing.assert_array_equal(full.data[0], [160, 240, 2280, 2850])
    np.testing.assert_array_equal(pb.data, full.data[:, 1:3])
    assert np.all(full.data == np.round(full.data)) and np.all(full.data > 0)
    assert np.all(full.data[:, 3] > full.data[:, 2])  # F3 > F2 everywhere


def test_speakers(full):
    assert sorted(set(full.speaker.tolist())) == list(range(1, 77))
    types = {s: set(full.group[full.speaker == s]) for s in range(1, 77)}
    assert all(len(groups) == 1 for groups in types.values())
    members = {
        group: {s for s, groups in types.items() if group in groups}
        for group in ("men", "women", "children")
    }
    assert members["men"] == set(range(1, 34))
    assert members["women"] == set(range(34, 62))
    assert members["children"] == set(range(62, 77))
    assert {len(s) for s in members.values()} == {33, 28, 15}
    girls = set(full.speaker[(full.group == "children") & (full.sex == "female")])
    assert girls == GIRLS
    assert set(full.sex[full.group == "men"]) == {"male"}
    assert set(full.sex[full.group == "women"]) == {"female"}


def test_every_speaker_says_every_vowel_twice(full):
    tokens = Counter(zip(full.speaker.tolist(), full.target.tolist(), strict=True))
    assert len(tokens) == 76 * 10 and set(tokens.values()) == {2}
    triples = zip(full.speaker, full.target, full.repetition, strict=True)
    assert set(Counter(triples).values()) == {1}
    assert set(full.repetition.tolist()) == {1, 2}


def test_rows_in_the_order_of_make_vowels(full):
    """Speaker, then repetition, then vowel: make_vowels' order, so that the
    synthetic data and the real data line up row by row."""
    order = np.lexsort((full.target, full.repetition, full.speaker))
    np.testing.assert_array_equal(order, np.arange(1520))
    for vowels in (ALL_VOWELS, ["AH", "IY", "AA"]):
        real = load_peterson_barney(vowels=vowels)
        synthetic = make_vowels(vowels=vowels, random_state=0)
        assert real.data.shape == synthetic.data.shape
        assert real.feature_names == synthetic.feature_names
        assert real.target_names.tolist() == synthetic.target_names.tolist()
        np.testing.assert_array_equal(real.target, synthetic.target)
        np.testing.assert_array_equal(real.group, synthetic.group)
        np.testing.assert_array_equal(real.speaker, synthetic.speaker + 1)


@pytest.mark.parametrize(
    "vowels",
    [
        ["IY", "IH", "AA", "AH"],
        ["iy", "ih", "aa", "ah"],  # Praat's Vowel column
        ["i", "ɪ", "a", "ʌ"],  # IPA, as Jacobs et al. write [a]
        ["i", "ɪ", "ɑ", "ʌ"],
        ["i", "\\ic", "\\as", "\\vt"],  # Praat's IPA column
        ("IY", "ih", "ɑ", "\\vt"),
    ],
)
def test_vowel_selection(full, vowels):
    pb = load_peterson_barney(vowels=vowels, formants=FORMANTS)
    assert pb.target_names.tolist() == ["IY", "IH", "AA", "AH"]
    assert pb.data.shape == (4 * 152, 4)
    assert pb.target.tolist()[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    for code, name in enumerate(pb.target_names):
        rows = full.target == ALL_VOWELS.index(name)
        np.testing.assert_array_equal(pb.data[pb.target == code], full.data[rows])
        np.testing.assert_array_equal(pb.speaker[pb.target == code], full.speaker[rows])


def test_vowel_order_sets_the_codes(full):
    pb = load_peterson_barney(vowels=["ER", "IY"])
    assert pb.target_names.tolist() == ["ER", "IY"]
    np.testing.assert_array_equal(
        pb.data[pb.target == 0],
        full.data[full.target == ALL_VOWELS.index("ER")][:, 1:3],
    )
    for spelling in ("\\er\\hr", "ɜ˞", "ɝ", "ɚ", "er"):
        assert load_peterson_barney(vowels=[spelling]).target_names.tolist() == ["ER"]
    one = load_peterson_barney(vowels="UW")
    assert one.target_names.tolist() == ["UW"] and set(one.target.tolist()) == {0}


@pytest.mark.parametrize(
    "formants", [("F0",), ("F3", "F0"), ("f1", "F2", "f3"), "F2", FORMANTS]
)
def test_formant_selection(full, formants):
    names = [formants.upper()] if isinstance(formants, str) else list(formants)
    names = [name.upper() for name in names]
    pb = load_peterson_barney(formants=formants)
    assert pb.feature_names == names
    columns = [FORMANTS.index(name) for name in names]
    np.testing.assert_array_equal(pb.data, full.data[:, columns])


def test_return_X_y(full):
    X, y = load_peterson_barney(formants=FORMANTS, return_X_y=True)
    np.testing.assert_array_equal(X, full.data)
    np.testing.assert_array_equal(y, full.target)


def test_as_frame(full):
    pd = pytest.importorskip("pandas")
    pb = load_peterson_barney(formants=FORMANTS, as_frame=True)
    assert isinstance(pb.data, pd.DataFrame) and isinstance(pb.target, pd.Series)
    assert list(pb.data.columns) == FORMANTS and pb.target.name == "target"
    assert list(pb.frame.columns) == [
        *FORMANTS,
        "speaker",
        "group",
        "sex",
        "repetition",
        "target",
    ]
    assert pb.frame.shape == (1520, 9)
    for name in FORMANTS:
        assert pb.frame[name].dtype == np.float64
    for name in ("speaker", "repetition", "target"):
        assert pb.frame[name].dtype == np.int64
    np.testing.assert_array_equal(pb.frame[FORMANTS].to_numpy(), full.data)
    for name in ("speaker", "group", "sex", "repetition", "target"):
        np.testing.assert_array_equal(pb.frame[name].to_numpy(), full[name])
    # The Bunch keeps the per-row arrays as arrays next to the frame.
    np.testing.assert_array_equal(pb.speaker, full.speaker)
    X, y = load_peterson_barney(as_frame=True, return_X_y=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    assert X.shape == (1520, 2) and list(X.columns) == ["F1", "F2"]


def test_as_frame_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="as_frame=True requires pandas"):
        load_peterson_barney(as_frame=True)
    assert load_peterson_barney().data.shape == (1520, 2)


def test_splits_by_speaker():
    pb = load_peterson_barney(vowels=["IY", "IH", "AA", "AH"])
    splitter = GroupShuffleSplit(n_splits=5, test_size=0.25, random_state=0)
    for train, test in splitter.split(pb.data, pb.target, groups=pb.speaker):
        assert set(pb.speaker[train]).isdisjoint(pb.speaker[test])
        assert len(train) + len(test) == len(pb.data)
        assert len(set(pb.speaker[test])) == 19
        # every held-out speaker is held out with all 8 of its tokens
        assert set(Counter(pb.speaker[test].tolist()).values()) == {8}
    folds = GroupKFold(n_splits=4).split(pb.data, pb.target, groups=pb.speaker)
    seen = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(seen), np.arange(len(pb.data)))


def test_means_match_the_published_averages(full):
    """Every group's mean of every vowel lies near Peterson & Barney's
    published average (make_vowels' table): the vowel labels sit on the right
    rows (swapping hod and hud, say, moves F1 by about 90 Hz for the men)."""
    tolerance = np.array([5.0, 15.0, 25.0, 90.0])
    for group, averages in datasets._MEAN_FORMANTS.items():
        for code, published in enumerate(averages):
            rows = (full.group == group) & (full.target == code)
            assert rows.sum() == 2 * datasets._GROUP_SPEAKERS[group]
            gap = np.abs(full.data[rows].mean(axis=0) - published)
            assert np.all(gap <= tolerance), (group, ALL_VOWELS[code], gap)


def test_facts_stated_in_the_readme(full):
    # Speaker 9's two tokens of hood are identical.
    hood = full.data[(full.speaker == 9) & (full.target == ALL_VOWELS.index("UH"))]
    np.testing.assert_array_equal(hood, [[167, 500, 1000, 2325]] * 2)
    # F2 equals F1 in five rows.
    same = full.data[:, 1] == full.data[:, 2]
    pairs = sorted(
        zip(
            full.speaker[same].tolist(),
            full.target_names[full.target[same]].tolist(),
            strict=True,
        )
    )
    assert pairs == [(2, "AO"), (2, "AO"), (72, "AA"), (72, "AO"), (74, "AO")]
    # No two speakers have the same values.
    per_speaker = {tuple(full.data[full.speaker == s].ravel()) for s in range(1, 77)}
    assert len(per_speaker) == 76


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vowels": ["IY", "OY"]}, "Unknown vowel 'OY'"),
        ({"vowels": ["\\ep"]}, "Unknown vowel"),
        ({"vowels": [3]}, "Unknown vowel 3"),
        ({"vowels": []}, "vowels is empty"),
        ({"vowels": ["IY", "i"]}, "names the vowel 'IY' twice"),
        ({"formants": ["F1", "F4"]}, "Unknown formant 'F4'"),
        ({"formants": ()}, "formants is empty"),
        ({"formants": ["F1", "f1"]}, "names the formant 'F1' twice"),
        ({"return_X_y": "yes"}, "return_X_y='yes'"),
        ({"as_frame": 1}, "as_frame=1"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_peterson_barney(**kwargs)


def test_damaged_file(monkeypatch, tmp_path):
    lines = _file().read_text(encoding="utf-8").splitlines(keepends=True)
    cases = {
        "short.csv": lines[:-1],
        "header.csv": ["type" + lines[0][4:], *lines[1:]],
        "ragged.csv": [*lines[:-1], lines[-1].rstrip("\n") + ",0\n"],
    }
    for name, content in cases.items():
        path = Path(tmp_path, name)
        path.write_text("".join(content), encoding="utf-8")
        monkeypatch.setattr(datasets, "_data_file", lambda _, path=path: path)
        with pytest.raises(ValueError, match="damaged; reinstall"):
            load_peterson_barney()
