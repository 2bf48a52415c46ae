"""The command line demo: ``python -m hmexperts demo``."""

import re
import sys

import pytest

from hmexperts import __main__ as cli


def _accuracies(out):
    """The vowel part's test accuracies, by model."""
    return {
        name: float(value)
        for name, value in re.findall(
            r"^\s+(mixture of 4 experts|logistic regression):\s+([0-9.]+)$",
            out,
            flags=re.MULTILINE,
        )
    }


def test_demo_prints_both_parts_and_writes_the_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "demo.png"
    cli.main(["demo", "--n-samples", "1500", "--figure", str(path)])
    out = capsys.readouterr().out

    assert "a depth-2 hierarchical mixture of experts" in out
    assert "Data: 1000 training and 500 test samples" in out
    assert re.search(r"R\^2: mixture -?[0-9.]+, one linear model -?[0-9.]+", out)

    assert "A mixture of 4 experts on vowels" in out
    accuracies = _accuracies(out)
    assert set(accuracies) == {"mixture of 4 experts", "logistic regression"}
    assert all(0.0 <= value <= 1.0 for value in accuracies.values())
    experts = re.findall(r"^\s+expert (\d): load ([0-9.]+)\s+(.+)$", out, re.MULTILINE)
    assert [int(leaf) for leaf, _, _ in experts] == [0, 1, 2, 3]
    assert sum(float(load) for _, load, _ in experts) == pytest.approx(1.0, abs=0.02)
    # Every expert names the vowels it mostly handles.
    assert all(re.match(r"(IY|IH|AA|AH) \d+%", vowels) for _, _, vowels in experts)

    assert path.is_file() and path.stat().st_size > 0
    assert f"Figure (gate regions and expert boundaries): {path}" in out


def test_no_figure_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli.main(["demo", "--n-samples", "1500", "--no-figure"])
    out = capsys.readouterr().out
    assert "A mixture of 4 experts on vowels" in out
    assert "Figure" not in out
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    cli.vowels_demo()
    out = capsys.readouterr().out
    assert 'pip install "hmexperts[plot]"' in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help_is_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m hmexperts")
    assert "``" not in out  # no RST markup


def test_every_option_has_help(capsys):
    demo = cli._parser()._subparsers._group_actions[0].choices["demo"]
    for action in demo._actions:
        assert action.help, action.option_strings
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"--random-state SEED\s+seed of the drawn data", out)
