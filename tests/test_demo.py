"""The main job (`make demo`) end to end on a few generated scenes, and its rerun after the model changed."""

from __future__ import annotations

import re

from bindsearch.demo import run_demo

TITLES = ("text -> video", "audio -> video", "depth -> infrared", "video -> text", "text -> moment")


def test_demo_indexes_searches_and_rebuilds_its_collection_for_another_model(tmp_path, capsys):
    run_demo(tmp_path, "random:tiny", n=6, seed=7)
    first = capsys.readouterr().out
    assert "generated 6 BindWorld scenes" in first and "36 new" in first
    assert "2 new, 0 changed, 0 unchanged, 0 removed, 0 failed (2 long file(s) as 24 windows)" in first
    for title in TITLES:
        assert title in first
    # Rerun with another model (new weights make the same mismatch): same world, collection rebuilt.
    run_demo(tmp_path, "bindsearch-mini", n=6, seed=7)
    second = capsys.readouterr().out
    assert "generated" not in second
    assert "indexed by another model or checkpoint: rebuilding it with bindsearch-mini" in second
    assert "36 new" in second
    # A trained model's first hit is a real match (agreeing with the query on what both sense) in every search.
    sections = {title: second.split(title, 1)[1].split("\n\n", 1)[0] for title in TITLES}
    for title, section in sections.items():
        assert re.search(r"^\s+1\. [+-]\d\.\d{3}  match  ", section, re.M), f"first hit no match for {title}"
    # The moment: the reel's scene the caption describes is found inside it, at the right two seconds.
    moment = re.search(r"at (\d+)-(\d+) s of reel\.mp4", sections["text -> moment"])
    first_hit = sections["text -> moment"].splitlines()[2]
    assert "match" in first_hit and f"reel.mp4 @ 0:{int(moment[1]):02d}-0:{int(moment[2]):02d}" in first_hit
