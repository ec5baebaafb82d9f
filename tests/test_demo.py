"""The main job (`make demo`) end to end on a few generated scenes, and its rerun after the model changed."""

from __future__ import annotations

import re

from bindsearch.demo import run_demo

TITLES = ("text -> video", "audio -> video", "depth -> infrared", "video -> text")


def test_demo_indexes_searches_and_rebuilds_its_collection_for_another_model(tmp_path, capsys):
    run_demo(tmp_path, "random:tiny", n=6, seed=7)
    first = capsys.readouterr().out
    assert "generated 6 BindWorld scenes" in first and "36 new" in first
    for title in TITLES:
        assert title in first
    # Rerun with another model (new weights make the same mismatch): same world, collection rebuilt.
    run_demo(tmp_path, "bindsearch-mini", n=6, seed=7)
    second = capsys.readouterr().out
    assert "generated" not in second
    assert "indexed by another model or checkpoint: rebuilding it with bindsearch-mini" in second
    assert "36 new" in second
    # A trained model finds a real match (a hit agreeing with the query on what both sense) in every search.
    sections = {title: second.split(title, 1)[1].split("\n\n", 1)[0] for title in TITLES}
    for title, section in sections.items():
        assert re.search(r"^\s+\d\. [+-]\d\.\d{3}  match  ", section, re.M), f"no matching hit for {title}"
