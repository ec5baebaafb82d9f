"""Benchmarks end to end on tiny replicas in the official layouts: the CLI with `random:tiny`, exact metrics with
an encoder whose vectors the test chooses, layout errors, --limit, the embedding cache and decode failures."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from replicas import (
    make_class_folders,
    make_clotho,
    make_esc50,
    make_k400,
    make_llvip,
    make_msrvtt,
    make_paired,
)
from typer.testing import CliRunner

from bindsearch import load_model, media
from bindsearch.evaluation import (
    DatasetLayoutError,
    RunOptions,
    class_prompts,
    paper_numbers,
    published_checkpoint,
    run_clotho,
    run_emergent,
    run_msrvtt,
    run_zeroshot,
)
from bindsearch.evaluation.datasets import NYUD_CLASSES, read_classification, read_clotho, read_msrvtt
from bindsearch.models import EmbeddingModel, Preprocess
from cli.bench import app, main

JSON_KEYS = {"benchmark", "dataset", "model", "checkpoint", "dataset_root", "layout", "modalities", "n_items",
             "n_queries", "directions", "paper", "paper_model", "baselines", "failed", "limit", "seconds", "cache",
             "hardware", "classes", "notes", "selection"}
RETRIEVAL_KEYS = {"R@1", "R@5", "R@10", "MdR", "MnR", "n_queries"}
IN_PROCESS = RunOptions(workers=0)


@pytest.fixture(autouse=True)
def _cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))


class KnownVectors(EmbeddingModel):
    """An encoder whose vectors the test sets: media files by their decoded content, texts by their string."""

    def __init__(self, dim: int = 8, spec: str = "known-vectors"):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device and a dtype
        prep = Preprocess(image_size=32, num_frames=4, num_mel_bins=32, target_length=64)
        self.preprocess = dict.fromkeys(("image", "infrared", "depth", "video", "audio"), prep)
        self.spec, self.checkpoint, self._dim = spec, "test", dim
        self.media_vectors: dict[tuple[str, str], torch.Tensor] = {}
        self.texts: list[str] = []
        self.text_vectors: list[torch.Tensor] = []
        self.calls: Counter[str] = Counter()

    @property
    def dim(self) -> int:
        return self._dim

    def set_file(self, modality: str, path: Path, vector) -> None:
        decoded = media.load(modality, path, self.preprocess[modality])
        self.media_vectors[(modality, _digest(decoded))] = torch.as_tensor(vector, dtype=torch.float32)

    def set_text(self, text: str, vector) -> None:
        self.texts.append(text)
        self.text_vectors.append(torch.as_tensor(vector, dtype=torch.float32))

    def tokenize(self, texts):
        return torch.tensor([[len(self.texts) - 1 - self.texts[::-1].index(t)] for t in texts])

    def encode_batch(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        self.calls[modality] += len(batch)
        if modality == "text":
            return torch.stack([self.text_vectors[int(i)] for i in batch[:, 0]])
        return torch.stack([self.media_vectors[(modality, _digest(x))] for x in batch])


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.contiguous().numpy().tobytes()).hexdigest()


def one_hot(i: int, dim: int = 8) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[i]


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def invoke(*args: str) -> dict:
    """Run `bindsearch bench ...` with --json; return the parsed JSON (and check it matches --out)."""
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_retrieval(metrics: dict, n_queries: int, n_items: int) -> None:
    assert set(metrics) == RETRIEVAL_KEYS
    assert metrics["n_queries"] == n_queries
    assert all(0 <= metrics[k] <= 100 for k in ("R@1", "R@5", "R@10"))
    assert metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"]
    assert 1 <= metrics["MdR"] <= n_items and 1 <= metrics["MnR"] <= n_items


# -- end to end through the CLI with the tiny random model ---------------------------------------------------


def test_msrvtt_cli_end_to_end_writes_the_documented_json(tmp_path):
    make_msrvtt(tmp_path / "msrvtt", n_videos=6)
    out = tmp_path / "msrvtt.json"
    result = invoke("msrvtt", "--root", str(tmp_path / "msrvtt"), "--model", "random:tiny", "--out", str(out))
    assert set(result) == JSON_KEYS and json.loads(out.read_text()) == result
    assert (result["benchmark"], result["n_items"], result["n_queries"], result["failed"]) == ("msrvtt", 6, 6, [])
    assert set(result["directions"]) == {"text->video", "video->text"}
    check_retrieval(result["directions"]["text->video"], 6, 6)
    check_retrieval(result["directions"]["video->text"], 6, 6)
    assert result["paper"] == {} and result["paper_model"] is None  # random weights: no paper number applies


def test_clotho_cli_end_to_end(tmp_path):
    make_clotho(tmp_path / "clotho", n_clips=4)
    result = invoke("clotho", "--root", str(tmp_path / "clotho"), "--model", "random:tiny")
    assert set(result) == JSON_KEYS and (result["n_items"], result["n_queries"]) == (4, 20)
    check_retrieval(result["directions"]["text->audio"], 20, 4)
    check_retrieval(result["directions"]["audio->text"], 4, 20)


def test_zeroshot_cli_on_class_folders_and_on_esc50(tmp_path):
    make_class_folders(tmp_path / "nyud", "depth")
    result = invoke("zeroshot", "--root", str(tmp_path / "nyud"), "--model", "random:tiny", "--modality", "depth")
    assert result["dataset"] == "nyud" and len(result["classes"]) == 10  # NYU-D's protocol: all ten candidates
    accuracy = result["directions"]["depth->class"]
    assert set(accuracy) == {"top1", "top5", "n_items"} and accuracy["n_items"] == 6
    assert 0 <= accuracy["top1"] <= 100 and result["baselines"] == {"ImageBind-Huge": {"depth->class": {"top1": 54.0}}}

    make_esc50(tmp_path / "ESC-50-master")
    result = invoke("zeroshot", "--root", str(tmp_path / "ESC-50-master"), "--model", "random:tiny", "--fold", "1")
    assert result["dataset"] == "esc50" and result["modalities"] == ["audio"] and result["n_items"] == 3
    assert result["classes"] == ["dog", "chirping_birds", "vacuum_cleaner"]  # ordered by ESC-50's target column
    assert set(result["directions"]["audio->class"]) == {"top1", "n_items"}  # top-5 only with more than 5 classes


def test_kinetics_flat_layout_labels_clips_by_youtube_id(tmp_path):
    from bindsearch.evaluation.datasets import read_classification

    written = make_k400(tmp_path / "kinetics400")
    data = read_classification(tmp_path / "kinetics400", "video")
    assert data.name == "k400" and data.classnames == ["abseiling", "air drumming", "zumba"]  # every class of val.csv
    assert [(p.name, data.classnames[i]) for p, i in zip(data.paths, data.labels, strict=True)] == sorted(written)
    assert data.notes == [f"1 of the 6 clips val.csv lists are not in {tmp_path / 'kinetics400' / 'val'} (5 are)"]
    result = invoke("zeroshot", "--root", str(tmp_path / "kinetics400"), "--model", "random:tiny")
    assert result["dataset"] == "k400" and result["n_items"] == 5 and data.notes[0] in result["notes"]
    limited = invoke("zeroshot", "--root", str(tmp_path / "kinetics400"), "--model", "random:tiny", "--limit", "2")
    assert limited["n_items"] == 2 and data.notes[0] in limited["notes"]  # it said "scored on the 5 present"
    assert result["baselines"] == {"ImageBind-Huge": {"video->class": {"top1": 50.0}}}


def test_kinetics_in_class_folders_beside_val_csv_and_a_stray_clip_reads_the_folders(tmp_path):
    import shutil

    from bindsearch.evaluation.datasets import read_classification

    files = make_class_folders(tmp_path / "k400", "video", classes=("abseiling", "zumba"))
    make_k400(tmp_path / "flat")
    shutil.copy(tmp_path / "flat" / "val.csv", tmp_path / "k400" / "val.csv")
    shutil.copy(files[0][0], tmp_path / "k400" / "stray.mp4")
    data = read_classification(tmp_path / "k400", "video")
    assert len(data.paths) == 4  # every class of val.csv a candidate, not only those with a folder:
    assert data.classnames == ["abseiling", "air drumming", "zumba"] and data.notes == []
    assert [data.classnames[i] for i in data.labels] == ["abseiling"] * 2 + ["zumba"] * 2


def test_kinetics_class_folders_named_by_youtube_id_count_the_missing_clips_and_refuse_unknown_classes(tmp_path):
    make_k400(tmp_path / "flat", missing=1)
    for clip in sorted((tmp_path / "flat" / "val").iterdir()):  # val/<class>/<youtube id>_...mp4, as downloaders
        label = next(r.split(",")[0] for r in (tmp_path / "flat" / "val.csv").read_text().splitlines()
                     if r.split(",")[1] == clip.name[:11])
        (clip.parent / label.replace(" ", "_")).mkdir(exist_ok=True)
        clip.rename(clip.parent / label.replace(" ", "_") / clip.name)
    data = read_classification(tmp_path / "flat", "video")
    assert data.name == "k400" and data.classnames == ["abseiling", "air drumming", "zumba"]
    assert data.notes == [f"1 of the 6 clips val.csv lists are not in {tmp_path / 'flat' / 'val'} (5 are); scored "
                          "against all 3 classes"]
    (tmp_path / "flat" / "val" / "zumba").rename(tmp_path / "flat" / "val" / "salsa")
    with pytest.raises(DatasetLayoutError, match="class folder 'salsa' in .* is not a label of .*val.csv"):
        read_classification(tmp_path / "flat", "video")


def test_kinetics_root_one_level_off_names_the_root_to_give_and_clips_beside_annotations_are_read(tmp_path, capsys):
    """--root k400/val (val.csv one level up) was told of class folders and ESC-50's layout; clips flat in ROOT beside
    annotations/val.csv were refused, annotations/ taken for a class folder."""
    make_k400(tmp_path / "k400")
    make_k400(tmp_path / "k4ann")
    (tmp_path / "k4ann" / "annotations").mkdir()
    (tmp_path / "k4ann" / "val.csv").rename(tmp_path / "k4ann" / "annotations" / "val.csv")
    for root in ("k400", "k4ann"):
        with pytest.raises(DatasetLayoutError, match=rf"k{root[1:]}/val is Kinetics-400's clip folder, labelled by "
                                                     rf".*val.csv: pass --root .*/{root}$"):
            read_classification(tmp_path / root / "val", "video")
    (tmp_path / "k400" / "val").rename(tmp_path / "k400_val")  # no val.csv anywhere: K400's layout is named
    with pytest.raises(DatasetLayoutError, match=r"k400_val has no class folders; expected .*, or Kinetics-400's "
                                                 r"ROOT/val.csv .*looked for in ROOT/, ROOT/annotations/"):
        read_classification(tmp_path / "k400_val", "video", dataset="k400")
    with pytest.raises(SystemExit) as exit_info:  # --dataset k400 reaches the reader
        main(["zeroshot", "--root", str(tmp_path / "k400_val"), "--dataset", "k400"])
    assert exit_info.value.code == 2 and "Kinetics-400's ROOT/val.csv" in capsys.readouterr().err

    for clip in (tmp_path / "k4ann" / "val").iterdir():  # flat in ROOT, beside annotations/
        clip.rename(tmp_path / "k4ann" / clip.name)
    (tmp_path / "k4ann" / "val").rmdir()
    data = read_classification(tmp_path / "k4ann", "video")
    assert data.name == "k400" and len(data.paths) == 5 and data.layout == "ROOT/annotations/val.csv and clips in ROOT/"
    files = make_class_folders(tmp_path / "k4cls", "video", classes=("abseiling", "zumba"))
    shutil.copytree(tmp_path / "k4ann" / "annotations", tmp_path / "k4cls" / "annotations")
    data = read_classification(tmp_path / "k4cls", "video")  # class folders beside annotations/: no class of its own
    assert data.classnames == ["abseiling", "air drumming", "zumba"] and len(data.paths) == len(files)


def test_kinetics_in_class_folders_reports_the_root_given_and_the_kinetics_layout(tmp_path):
    make_class_folders(tmp_path / "k4cls" / "videos_val", "video", classes=("abseiling", "zumba"))
    make_k400(tmp_path / "flat")
    shutil.copy(tmp_path / "flat" / "val.csv", tmp_path / "k4cls" / "val.csv")
    result = invoke("zeroshot", "--root", str(tmp_path / "k4cls"), "--model", "random:tiny")
    assert result["dataset"] == "k400" and result["dataset_root"] == str(tmp_path / "k4cls")
    assert result["layout"] == "ROOT/val.csv and clips in class folders ROOT/videos_val/<class name>/"
    table = CliRunner().invoke(app, ["zeroshot", "--root", str(tmp_path / "k4cls"), "--model", "random:tiny"])
    assert f"\nroot {tmp_path / 'k4cls'}\n" in table.stdout


def test_one_class_folder_is_a_layout_error_not_a_perfect_score(tmp_path):
    from bindsearch.evaluation.datasets import read_classification

    make_class_folders(tmp_path / "k400", "video", classes=("abseiling",))
    with pytest.raises(DatasetLayoutError, match=r"holds one class folder \(abseiling\).*two or more"):
        read_classification(tmp_path / "k400", "video")


def test_nyud_raw_scene_types_are_scored_on_the_ten_class_protocol(tmp_path):
    raw = ("bedroom", "study", "kitchen", "printer_room", "bedroom", "living_room")
    make_paired(tmp_path / "nyuv2" / "test", n_pairs=6, labels="scene_class", classes=raw)
    (tmp_path / "nyuv2" / "test" / "rgb").rename(tmp_path / "nyuv2" / "test" / "image")
    result = invoke("zeroshot", "--root", str(tmp_path / "nyuv2" / "test"), "--model", "random:tiny")
    assert result["dataset"] == "nyud" and result["modalities"] == ["depth"]
    ten = ["bathroom", "bedroom", "bookstore", "classroom", "dining_room", "home_office", "kitchen", "living_room",
           "office", "others"]
    assert result["classes"] == ten  # every class a candidate, present or not: a subset gets no easier task
    assert any("2 file(s) of the types outside the nine named classes scored as 'others'" in n
               for n in result["notes"])
    assert any(n.startswith("depth fed as metres") for n in result["notes"])
    emergent = invoke("emergent", "--root", str(tmp_path / "nyuv2" / "test"), "--model", "random:tiny",
                      "--a-dir", "image")
    assert emergent["classes"] == ten


def test_a_folder_named_like_nyud_is_not_merged_into_one_class(tmp_path):
    """Classes that are no NYU scene type keep their names (before: all 'others', top-1 100 %); NYU types that all
    fall outside the nine named ones are still scored against all ten classes."""
    from bindsearch.evaluation.bench import run_zeroshot

    shapes = ("circle", "square", "circle", "square")
    make_paired(tmp_path / "nyu_shapes" / "test", n_pairs=4, labels="scene_class", classes=shapes)
    (tmp_path / "nyu_shapes" / "test" / "rgb").rename(tmp_path / "nyu_shapes" / "test" / "image")
    result = invoke("zeroshot", "--root", str(tmp_path / "nyu_shapes" / "test"), "--model", "random:tiny")
    assert result["classes"] == ["circle", "square"]
    assert any("none of its classes is an NYU scene type" in n for n in result["notes"])
    outside = ("study", "printer_room", "study", "printer_room")
    make_paired(tmp_path / "nyuv2" / "test", n_pairs=4, labels="scene_class", classes=outside)
    (tmp_path / "nyuv2" / "test" / "rgb").rename(tmp_path / "nyuv2" / "test" / "image")
    result = run_zeroshot("random:tiny", tmp_path / "nyuv2" / "test")
    assert len(result.classes) == 10 and result.directions["depth->class"]["n_items"] == 4


def test_emergent_cli_with_scene_classes_and_with_llvip_folders(tmp_path):
    make_paired(tmp_path / "nyuv2" / "test", labels="scene_class")
    result = invoke("emergent", "--root", str(tmp_path / "nyuv2" / "test"), "--model", "random:tiny")
    assert set(result["directions"]) == {"image->depth", "depth->image", "image->class", "depth->class",
                                         "image+depth->class"}
    check_retrieval(result["directions"]["image->depth"], 4, 4)
    assert result["dataset"] == "nyud" and result["n_items"] == 4

    make_paired(tmp_path / "LLVIP", a_dir="visible/test", b_dir="infrared/test")
    result = invoke("emergent", "--root", str(tmp_path / "LLVIP"), "--model", "random:tiny", "--b", "infrared",
                    "--a-dir", "visible/test", "--b-dir", "infrared/test")
    assert set(result["directions"]) == {"image->infrared", "infrared->image"} and result["classes"] is None


def test_table_shows_ours_beside_the_paper(tmp_path):
    make_clotho(tmp_path / "clotho", n_clips=2)
    result = CliRunner().invoke(app, ["clotho", "--root", str(tmp_path / "clotho"), "-m", "random:tiny"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    at = next(i for i, cells in enumerate(lines) if cells[:1] == ["direction"])
    assert lines[at][:4] == ["direction", "metric", "ours", "paper"]
    assert lines[at + 1][:2] == ["text->audio", "R@1"] and lines[at + 1][-1] == "-"


# -- exact metrics with chosen vectors -----------------------------------------------------------------------


def test_msrvtt_metrics_follow_the_csv_pairing(tmp_path):
    rows = make_msrvtt(tmp_path / "msrvtt", n_videos=6)
    model = KnownVectors(spec="languagebind:video_ft")
    for i, (video_id, sentence) in enumerate(rows):
        model.set_file("video", tmp_path / "msrvtt" / "videos" / "all" / f"{video_id}.mp4", one_hot(i))
        model.set_text(sentence, one_hot(1 if i == 0 else i))  # caption 0 points at video 1
    result = run_msrvtt(model, tmp_path / "msrvtt", options=IN_PROCESS)
    t2v, v2t = result.directions["text->video"], result.directions["video->text"]
    # caption 0 ties its video with 4 others at 0 and loses to video 1: rank 6 (ties count against the query)
    assert t2v["R@1"] == pytest.approx(500 / 6) and t2v["R@10"] == 100 and t2v["MnR"] == pytest.approx(11 / 6)
    # video 0: every caption scores 0 -> rank 6; video 1: caption 0 ties its own caption -> rank 2
    assert v2t["R@1"] == pytest.approx(400 / 6) and v2t["MnR"] == pytest.approx(12 / 6)
    assert result.paper == {"text->video": {"R@1": 42.7}} and result.paper_model == "languagebind:video_ft"
    assert "42.7" in result.table()


def test_clotho_audio_to_text_counts_any_of_five_captions(tmp_path):
    clips = make_clotho(tmp_path / "clotho", n_clips=4)
    model = KnownVectors()
    for i, (name, captions) in enumerate(clips):
        model.set_file("audio", tmp_path / "clotho" / "evaluation" / name, one_hot(i))
        for j, caption in enumerate(captions):
            model.set_text(caption, one_hot(1 if (i, j) == (0, 4) else i))  # one caption of clip 0 fits clip 1
    result = run_clotho(model, tmp_path / "clotho", options=IN_PROCESS)
    assert result.directions["text->audio"]["R@1"] == pytest.approx(95.0)  # 19 of 20 captions
    # clip 0 keeps 4 exact captions (rank 1); clip 1 ties with clip 0's stray caption (rank 2)
    assert result.directions["audio->text"]["R@1"] == pytest.approx(75.0)
    assert result.directions["audio->text"]["n_queries"] == 4


def test_zeroshot_accuracy_with_known_class_vectors(tmp_path):
    files = make_class_folders(tmp_path / "scenes", "depth")
    classes = sorted({name for _, name in files})
    model = KnownVectors()
    for k, (path, name) in enumerate(files):
        model.set_file("depth", path, one_hot(1 if k == 1 else classes.index(name)))  # the 2nd file looks wrong
    for c, prompts in enumerate(class_prompts(classes, "depth")):
        for prompt in prompts:
            model.set_text(prompt, one_hot(c))
    result = run_zeroshot(model, tmp_path / "scenes", modality="depth", options=IN_PROCESS)
    assert result.directions["depth->class"]["top1"] == pytest.approx(500 / 6)


def test_emergent_retrieval_directions_and_fused_query(tmp_path):
    pairs = make_paired(tmp_path / "pairs", n_pairs=4)
    model = KnownVectors()
    for i, (rgb, depth, _) in enumerate(pairs):
        model.set_file("image", rgb, one_hot(i))
        model.set_file("depth", depth, one_hot(0 if i == 3 else i))  # depth 3 looks like depth 0
    result = run_emergent(model, tmp_path / "pairs", options=IN_PROCESS)
    assert result.directions["image->depth"]["R@1"] == 50 and result.directions["image->depth"]["MnR"] == 2
    assert result.directions["depth->image"]["R@1"] == 75

    pairs = make_paired(tmp_path / "nyud", n_pairs=2, labels="labels.csv", classes=("kitchen", "office"))
    model = KnownVectors(spec="languagebind:image,languagebind:depth")
    kitchen, office = one_hot(6), one_hot(7)
    # each single modality is wrong on one pair; their mean is right on both
    model.set_file("image", pairs[0][0], unit(kitchen + 2 * office))
    model.set_file("depth", pairs[0][1], unit(kitchen))
    model.set_file("image", pairs[1][0], unit(office))
    model.set_file("depth", pairs[1][1], unit(2 * kitchen + office))
    ten = list(NYUD_CLASSES) + ["others"]  # NYU-D's protocol: every class is a candidate
    vector_of = {name: one_hot(c % 6) for c, name in enumerate(ten)} | {"kitchen": kitchen, "office": office}
    for modality in ("image", "depth"):
        for name, prompts in zip(ten, class_prompts([n.replace("_", " ") for n in ten], modality), strict=True):
            for prompt in prompts:
                model.set_text(prompt, vector_of[name])
    result = run_emergent(model, tmp_path / "nyud", options=IN_PROCESS)
    top1 = {d: m["top1"] for d, m in result.directions.items() if d.endswith("->class")}
    assert top1 == {"image->class": 50, "depth->class": 50, "image+depth->class": 100}
    assert result.paper["image+depth->class"] == {"top1": 77.4} and result.dataset == "nyud"


# -- layouts, --limit, cache, failures -----------------------------------------------------------------------


def _break_missing_csv(root: Path) -> tuple[str, list[str], str]:
    make_msrvtt(root, n_videos=2)
    (root / "MSRVTT_JSFUSION_test.csv").unlink()
    return "msrvtt", [], "MSRVTT_JSFUSION_test.csv not found"


def _break_missing_video(root: Path) -> tuple[str, list[str], str]:
    rows = make_msrvtt(root, n_videos=3)
    (root / "videos" / "all" / f"{rows[1][0]}.mp4").unlink()
    return "msrvtt", [], f"'{rows[1][0]}.mp4'"


def _break_missing_clip(root: Path) -> tuple[str, list[str], str]:
    clips = make_clotho(root, n_clips=2)
    (root / "evaluation" / clips[0][0]).unlink()
    return "clotho", [], repr(clips[0][0])


def _break_empty_class(root: Path) -> tuple[str, list[str], str]:
    make_class_folders(root, "image", classes=("cat", "dog"), per_class=1)
    (root / "zebra").mkdir()
    return "zeroshot", ["--modality", "image"], "class folder " + str((root / "zebra").resolve())


def _break_header(root: Path) -> tuple[str, list[str], str]:
    make_clotho(root, n_clips=1)
    path = root / "clotho_captions_evaluation.csv"
    path.write_text(path.read_text().replace("file_name", "filename", 1))
    return "clotho", [], "lacks column(s) file_name"


def _break_llvip_subfolders(root: Path) -> tuple[str, list[str], str]:
    make_paired(root, a_dir="visible/test", b_dir="infrared/test")  # LLVIP's own folders, given no --a-dir/--b-dir
    return "emergent", ["--b", "infrared"], "sub-folders (test): name one with --a-dir/--b-dir, e.g. visible/test"


@pytest.mark.parametrize("breaker", [_break_missing_csv, _break_missing_video, _break_missing_clip,
                                     _break_empty_class, _break_header, _break_llvip_subfolders])
def test_wrong_layout_is_one_error_line_naming_the_missing_part(tmp_path, capsys, breaker):
    command, extra, missing = breaker(tmp_path / "data")
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--root", str(tmp_path / "data"), "--model", "random:tiny", *extra])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err
    assert err.startswith("error: ") and missing in err and "expected" in err


def test_layout_error_comes_before_loading_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="MSRVTT_JSFUSION_test.csv"):
        run_msrvtt("languagebind:video_ft", tmp_path / "empty")  # not downloadable here: must not be reached


def test_layout_says_where_the_index_and_the_files_were_found(tmp_path):
    root = tmp_path / "msrvtt"
    make_msrvtt(root, n_videos=2, video_dir="MSRVTT/videos/all")
    (root / "msrvtt_data").mkdir()
    (root / "MSRVTT_JSFUSION_test.csv").rename(root / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv")
    assert read_msrvtt(root).layout == "ROOT/msrvtt_data/MSRVTT_JSFUSION_test.csv and videos in ROOT/MSRVTT/videos/all/"
    make_clotho(tmp_path / "clotho", n_clips=2)
    clotho = read_clotho(tmp_path / "clotho")
    assert clotho.layout == "ROOT/clotho_captions_evaluation.csv and clips in ROOT/evaluation/"


def test_limit_takes_the_first_items_and_their_captions(tmp_path, tiny_model):
    from bindsearch.evaluation.datasets import read_classification, read_msrvtt

    rows = make_msrvtt(tmp_path / "msrvtt", n_videos=5)
    result = run_msrvtt(tiny_model, tmp_path / "msrvtt", limit=3, options=IN_PROCESS)
    assert (result.n_items, result.n_queries, result.limit) == (3, 3, 3)
    chosen = read_msrvtt(tmp_path / "msrvtt", limit=3)  # the first three in CSV order (not sorted), and their captions
    assert [p.stem for p in chosen.items] == [video_id for video_id, _ in rows[:3]]
    assert chosen.captions == [sentence for _, sentence in rows[:3]] and chosen.item_of_caption.tolist() == [0, 1, 2]
    files = make_class_folders(tmp_path / "scenes", "image", classes=("a", "b", "c"), per_class=3)
    result = run_zeroshot(tiny_model, tmp_path / "scenes", modality="image", limit=4, options=IN_PROCESS)
    assert result.n_items == 4 and result.classes == ["a", "b", "c"] and len(files) == 9
    # The classes in turn (a, b, c, then a again), listed in folder order: a's first two, b's first, c's first.
    taken = read_classification(tmp_path / "scenes", "image", limit=4)
    by_class = {c: sorted(p for p, name in files if name == c) for c in "abc"}
    assert [taken.classnames[i] for i in taken.labels] == ["a", "a", "b", "c"]
    assert taken.paths == [by_class["a"][0], by_class["a"][1], by_class["b"][0], by_class["c"][0]]


def test_rerun_reads_the_cache_and_a_changed_file_is_encoded_again(tmp_path, tiny_model, monkeypatch):
    make_clotho(tmp_path / "clotho", n_clips=3)
    calls: Counter[str] = Counter()
    original = tiny_model.encode_batch

    def counting(modality, batch):
        calls[modality] += len(batch)
        return original(modality, batch)

    monkeypatch.setattr(tiny_model, "encode_batch", counting)
    first = run_clotho(tiny_model, tmp_path / "clotho", options=IN_PROCESS)
    assert calls == {"audio": 3, "text": 15} and first.cache["encoded"] == 18
    assert Path(first.cache["path"]).is_relative_to(tmp_path / "home" / "cache")
    second = run_clotho(tiny_model, tmp_path / "clotho", options=IN_PROCESS)
    assert calls == {"audio": 3, "text": 15} and (second.cache["hits"], second.cache["encoded"]) == (18, 0)
    assert second.directions == first.directions

    clip = next((tmp_path / "clotho" / "evaluation").iterdir())
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    third = run_clotho(tiny_model, tmp_path / "clotho", options=IN_PROCESS)
    assert calls["audio"] == 4 and third.cache["encoded"] == 1


def test_files_with_the_same_bytes_get_the_same_vector_cached_or_not(tmp_path, tiny_model):
    """A vector differs in its last bits with the batch it was encoded in: a byte copy encoded apart from its
    original did not tie with it, and a benchmark's numbers moved with what the cache held (R@1 59.0 -> 62.3 after
    a touch). Copies now share one encoding, or the cached vector of their original."""
    from bindsearch.evaluation.cache import EmbeddingCache, encode_files_cached
    from bindsearch.media.writers import write_image

    files = [write_image(tmp_path / f"{i}.png", np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8))
             for i in range(3)]
    copy = tmp_path / "copy.png"
    copy.write_bytes(files[0].read_bytes())
    with EmbeddingCache(tiny_model.identity, tmp_path / "cache") as cache:
        first = encode_files_cached(tiny_model, "image", [*files, copy], cache, batch_size=2, workers=0)
        assert first.encoded == 3 and np.array_equal(first.vectors[3], first.vectors[0])  # the copy: not encoded
        os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))  # the copy, touched
        second = encode_files_cached(tiny_model, "image", [*files, copy], cache, batch_size=1, workers=0)
        assert (second.hits, second.encoded) == (4, 0) and np.array_equal(second.vectors, first.vectors)
        third = encode_files_cached(tiny_model, "image", [*files, copy], cache, workers=0)
        assert (third.hits, third.encoded) == (4, 0)  # the copy's own key was stored with the vector it took
        (tmp_path / "bad.png").write_bytes(b"not a picture")
        (tmp_path / "bad copy.png").write_bytes(b"not a picture")
        broken = encode_files_cached(tiny_model, "image", [tmp_path / "bad.png", tmp_path / "bad copy.png"], cache,
                                     workers=0)
        assert sorted(f.path.name for f in broken.failures) == ["bad copy.png", "bad.png"]  # each file named


def test_identical_undecodable_files_do_not_lower_the_count_of_vectors_computed(tmp_path, tiny_model):
    """K400's failed downloads are 0-byte files, copies of one another: one is tried for all, and its copies'
    failures were also taken off `encoded` (3 good files and three 0-byte ones reported 1 vector computed)."""
    from bindsearch.evaluation.cache import encode_files_cached
    from bindsearch.media.writers import write_image

    good = [write_image(tmp_path / f"{i}.png", np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8))
            for i in range(3)]
    empty = [tmp_path / f"empty{i}.png" for i in range(3)]
    for path in empty:
        path.write_bytes(b"")
    result = encode_files_cached(tiny_model, "image", [*good, *empty], None, workers=0)
    assert sorted(f.path.name for f in result.failures) == ["empty0.png", "empty1.png", "empty2.png"]
    assert (result.hits, result.encoded) == (0, 3) and result.ok.tolist() == [True] * 3 + [False] * 3


def test_undecodable_file_is_reported_and_the_rest_evaluated(tmp_path, capsys):
    rows = make_msrvtt(tmp_path / "msrvtt", n_videos=4)
    broken = tmp_path / "msrvtt" / "videos" / "all" / f"{rows[2][0]}.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(SystemExit) as exit_info:
        main(["msrvtt", "--root", str(tmp_path / "msrvtt"), "-m", "random:tiny", "--out", str(tmp_path / "r.json")])
    assert exit_info.value.code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert [f["path"] for f in result["failed"]] == [str(broken)]
    assert (result["n_items"], result["n_queries"]) == (3, 3) and "other 3 of 4" in result["notes"][0]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {broken}: {result['failed'][0]['error']}; skipped"]


def test_an_out_that_cannot_be_written_is_refused_first_or_leaves_the_results_printed(tmp_path, capsys, monkeypatch):
    make_clotho(tmp_path / "clotho", n_clips=3)
    (tmp_path / "taken").write_text("")
    for out, said in ((tmp_path, "is a folder"), (tmp_path / "taken" / "r.json", "a file; give a path in a folder")):
        with pytest.raises(SystemExit) as exit_info:  # said before a model is asked for: none could be loaded
            main(["clotho", "--root", str(tmp_path / "clotho"), "-m", "no-such-model", "--out", str(out)])
        assert exit_info.value.code == 2 and said in " ".join(capsys.readouterr().err.replace("│", " ").split())

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(SystemExit) as exit_info:
        main(["clotho", "--root", str(tmp_path / "clotho"), "-m", "random:tiny", "--out", str(tmp_path / "r.json")])
    printed = capsys.readouterr()
    assert exit_info.value.code == 1 and "R@10" in printed.out  # the table, though the file could not be written
    assert printed.err.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'r.json'}: No space left on device; the results are printed above, not written")


@pytest.mark.parametrize("write", [
    lambda root: make_msrvtt(root) and (root / "MSRVTT_JSFUSION_test.csv").open("a").write("ret9,msr1,video1\n"),
    lambda root: make_esc50(root) and (root / "meta" / "esc50.csv").open("a").write("1-100038-A-14.wav,1,14\n"),
])
def test_a_short_csv_row_is_one_line_naming_the_file_and_row(tmp_path, write):
    from bindsearch.evaluation.datasets import read_classification

    write(tmp_path / "data")
    read = read_msrvtt if (tmp_path / "data" / "MSRVTT_JSFUSION_test.csv").exists() else (
        lambda root: read_classification(root, "audio"))
    with pytest.raises(DatasetLayoutError, match=r"\.csv: data row \d+ has no (sentence|category) field") as info:
        read(tmp_path / "data")
    assert "\n" not in str(info.value)


def test_an_empty_msrvtt_sentence_is_refused_naming_its_row_not_scored_as_a_query(tmp_path):
    make_msrvtt(tmp_path / "msrvtt", n_videos=3)
    index = tmp_path / "msrvtt" / "MSRVTT_JSFUSION_test.csv"
    lines = index.read_text().splitlines()
    key, vid_key, video_id, _ = lines[2].split(",")
    index.write_text("\n".join([*lines[:2], f"{key},{vid_key},{video_id}, ", *lines[3:]]) + "\n")
    with pytest.raises(DatasetLayoutError) as info:
        read_msrvtt(tmp_path / "msrvtt")
    assert str(info.value) == (f"{index}: data row 2 ({video_id}) has an empty sentence; give its caption or delete "
                               "the row")


def test_the_cache_keeps_bf16_vectors_apart_from_fp32(tmp_path, tiny_model):
    make_clotho(tmp_path / "clotho", n_clips=2)
    first = run_clotho(tiny_model, tmp_path / "clotho", options=IN_PROCESS)
    bf16 = load_model("random:tiny", device="cpu", dtype="bfloat16")
    second = run_clotho(bf16, tmp_path / "clotho", options=IN_PROCESS)
    assert (second.cache["hits"], second.cache["encoded"]) == (0, 12) and second.cache["path"] != first.cache["path"]
    assert (first.hardware["dtype"], second.hardware["dtype"]) == ("float32", "bfloat16")
    assert "bfloat16" in second.table().splitlines()[0]


def test_paper_numbers_match_published_checkpoints_only():
    assert published_checkpoint("LanguageBind/LanguageBind_Video_FT", "video") == "languagebind:video_ft"
    cached = "/hf/models--LanguageBind--LanguageBind_Audio/snapshots/0123abc"
    assert published_checkpoint(f"languagebind:depth,{cached}", "audio") == "languagebind:audio"
    assert published_checkpoint("~/ckpt/LanguageBind_Thermal", "infrared") == "languagebind:thermal"
    assert published_checkpoint("random:tiny", "video") is None
    assert paper_numbers("clotho", "clotho", "languagebind:audio_ft", ("audio",))[1] == {
        "text->audio": {"R@1": 16.7, "R@10": 52.0}}
    assert paper_numbers("zeroshot", "esc50", "languagebind:audio", ("audio",))[1] == {"audio->class": {"top1": 91.8}}
    assert paper_numbers("emergent", "llvip", "languagebind:image", ("image", "infrared"))[1] == {}


def test_benchmark_script_runs_end_to_end(tmp_path):
    make_paired(tmp_path / "nyuv2", n_pairs=3)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "emergent.py"
    done = subprocess.run([sys.executable, str(script), "--root", str(tmp_path / "nyuv2"), "--model", "random:tiny",
                           "--workers", "0", "--out", str(tmp_path / "e.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "image->depth" in done.stdout and json.loads((tmp_path / "e.json").read_text())["n_items"] == 3


def test_clotho_counts_a_clip_listed_twice_once_and_says_which_clips_lack_captions(tmp_path):
    import csv

    clips = make_clotho(tmp_path / "clotho", n_clips=3)
    index = tmp_path / "clotho" / "clotho_captions_evaluation.csv"
    rows = list(csv.reader(index.open()))
    rows[2][5] = ""  # the second clip has four captions
    rows.append([clips[0][0], "an extra caption a", "b", "c", "d", "e"])  # the first clip listed again
    with index.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    data = read_clotho(tmp_path / "clotho")
    assert [p.name for p in data.items] == [name for name, _ in clips]  # three items, not four
    assert len(data.captions) == 5 + 4 + 5 + 5 and list(data.item_of_caption[-5:]) == [0] * 5
    assert any("1 clip(s) listed twice" in n for n in data.notes)
    assert any(f"1 clip(s) have fewer than 5 captions (e.g. {clips[1][0]})" in n for n in data.notes)
    result = invoke("clotho", "--root", str(tmp_path / "clotho"), "--model", "random:tiny")
    assert (result["n_items"], result["n_queries"]) == (3, 19) and data.notes[0] in result["notes"]


def test_nyu_root_holding_its_splits_is_refused_not_scored_as_two_classes(tmp_path):
    make_class_folders(tmp_path / "nyuv2" / "train", "depth", classes=("bedroom", "kitchen"))
    make_class_folders(tmp_path / "nyuv2" / "test", "depth", classes=("bedroom", "kitchen"))
    with pytest.raises(DatasetLayoutError, match=r"are splits \(test, train\), not classes; pass --root .*test$"):
        read_classification(tmp_path / "nyuv2", "depth")


def test_kinetics_csv_found_but_no_clips_is_refused_and_mmaction_folders_are_read(tmp_path):
    make_k400(tmp_path / "k400", missing=0)
    (tmp_path / "k400" / "val").rename(tmp_path / "k400" / "videos_val")  # mmaction2's name for the folder
    (tmp_path / "k400" / "videos_train").mkdir()
    data = read_classification(tmp_path / "k400", "video")
    assert data.name == "k400" and len(data.paths) == 6 and data.classnames == ["abseiling", "air drumming", "zumba"]
    (tmp_path / "k400" / "videos_val").rename(tmp_path / "k400" / "clips")  # beside val.csv, but not where K400 is
    with pytest.raises(DatasetLayoutError, match=r"found .*val.csv \(Kinetics-400\) but no clips"):
        read_classification(tmp_path / "k400", "video")


def test_dataset_names_are_matched_or_refused_and_a_limit_says_the_paper_is_over_the_whole_set(tmp_path):
    from bindsearch.evaluation.paper import dataset_named

    assert [dataset_named(n) for n in ("NYUD", "nyu", "Kinetics-400", "ESC-50", "LLVIP")] == [
        "nyud", "nyud", "k400", "esc50", "llvip"]
    assert dataset_named("NYU_Depth_V2") == "nyud" and dataset_named("kinetics 400") == "k400"
    for other in ("imagenet", "Kinetics-600", "kinetics700", "k4000"):
        with pytest.raises(ValueError, match=f"unknown --dataset '{other}'"):
            dataset_named(other)
    make_class_folders(tmp_path / "scenes", "depth", classes=("bedroom", "kitchen", "study"))
    result = invoke("zeroshot", "--root", str(tmp_path / "scenes"), "--modality", "depth", "--dataset", "NYUD",
                    "--model", "random:tiny", "--limit", "4")
    assert result["dataset"] == "nyud" and len(result["classes"]) == 10  # the NYU-D protocol, not 3 classes
    assert any(n.startswith("limited to 4 items: the published numbers") for n in result["notes"])


def test_llvip_retrieval_on_every_pair_says_the_paper_sampled_ten_percent(tmp_path):
    make_paired(tmp_path / "LLVIP", a_dir="visible/test", b_dir="infrared/test")
    result = invoke("emergent", "--root", str(tmp_path / "LLVIP"), "--model", "random:tiny", "--a-dir",
                    "visible/test", "--b-dir", "infrared/test", "--b", "infrared")
    assert any("random 10 % of the test pairs (--sample 0.1)" in n for n in result["notes"])


def test_the_bench_cache_lives_in_bindsearch_home_else_the_xdg_cache(tmp_path, monkeypatch):
    from bindsearch.evaluation import cache_dir

    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / "cache"
    monkeypatch.delenv("BINDSEARCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "bindsearch" / "cache"


def test_nyud_scene_classes_beside_the_split_are_read_and_modality_folders_are_never_classes(tmp_path):
    """TUI-NICR keeps scene_class/ at the dataset's top, beside test/: read from there. Without it, test/'s rgb/ and
    depth/ were scored as a two-class problem, 'depth' against 'rgb'."""
    make_paired(tmp_path / "nyuv2" / "test", n_pairs=4, labels="scene_class", classes=("bedroom", "kitchen"))
    (tmp_path / "nyuv2" / "test" / "scene_class").rename(tmp_path / "nyuv2" / "scene_class")
    data = read_classification(tmp_path / "nyuv2" / "test", "depth")
    assert data.classnames == ["bedroom", "kitchen"] and len(data.paths) == 4
    emergent = invoke("emergent", "--root", str(tmp_path / "nyuv2" / "test"), "--model", "random:tiny")
    assert emergent["classes"] is not None and len(emergent["classes"]) == 10
    (tmp_path / "nyuv2" / "scene_class").rename(tmp_path / "elsewhere")
    with pytest.raises(DatasetLayoutError, match=r"holds depth/, rgb/: modality folders, not classes; .*scene_class"):
        read_classification(tmp_path / "nyuv2" / "test", "depth")


def test_a_root_one_level_above_a_dataset_names_the_root_to_give(tmp_path):
    make_esc50(tmp_path / "download" / "ESC-50-master", classes=("dog", "rain"), per_class=1)
    with pytest.raises(DatasetLayoutError, match=r"holds one folder, a dataset: pass --root .*ESC-50-master$"):
        read_classification(tmp_path / "download", "audio")


def test_a_wrong_zeroshot_root_is_refused_before_a_model_is_asked_for_the_modality(tmp_path, capsys):
    """Without --modality the model's one tower decides it: a missing root, or the folder ESC-50's zip was unpacked
    into, said "no model given ... pass --model" (or "say which to evaluate with --modality") instead."""
    make_esc50(tmp_path / "download" / "ESC-50-master", classes=("dog", "rain"), per_class=1)
    for root, said in [(tmp_path / "nope", f"dataset root {tmp_path / 'nope'} is not a folder"),
                       (tmp_path / "download", "holds one folder, a dataset: pass --root "
                                               f"{tmp_path / 'download' / 'ESC-50-master'}")]:
        for model in ([], ["--model", "random:tiny"]):
            with pytest.raises(SystemExit) as exit_info:
                main(["zeroshot", "--root", str(root), *model])
            err = capsys.readouterr().err.strip()
            assert exit_info.value.code == 2 and err.startswith("error: ") and said in err, (model, err)
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        run_zeroshot("languagebind:video_ft", tmp_path / "nope")  # not downloadable here: must not be reached


def test_zeroshot_without_a_model_takes_the_modality_from_the_layout_or_asks_for_modality(tmp_path, capsys,
                                                                                          monkeypatch):
    """The published checkpoint to evaluate is the modality's: class folders of pictures need --modality (it said
    "pass --model"), and a Kinetics val.csv holds video under any folder name."""
    make_class_folders(tmp_path / "shapes", "image", classes=("circle", "square"))
    with pytest.raises(SystemExit) as exit_info:
        main(["zeroshot", "--root", str(tmp_path / "shapes")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'shapes'}: cannot tell these files' modality from the folder's layout or name; pass "
        "--modality (video, audio, depth, infrared or image) to evaluate its published checkpoint, or --model")
    asked = []

    def published(spec, **options):  # no checkpoint can be downloaded here: which one is asked for is the point
        asked.append(spec)
        return load_model("random:tiny", **options)

    monkeypatch.setattr("bindsearch.evaluation.bench.load_model", published)
    make_k400(tmp_path / "my_val", classes=("abseiling", "zumba"), per_class=1)
    result = run_zeroshot(None, tmp_path / "my_val", options=RunOptions(cache=False, workers=0))
    assert asked == ["languagebind:video_ft"] and result.modalities == ["video"]


def test_kinetics_600_is_not_k400_and_none_turns_detection_off(tmp_path):
    from bindsearch.evaluation.paper import dataset_named, detect_dataset

    for name, expected in [("kinetics600", None), ("Kinetics-700-2020", None), ("kinetics", "k400"),
                           ("kinetics400_val", "k400"), ("kinetics-400", "k400"), ("my_k400", "k400"),
                           ("ESC-50-master", "esc50"), ("nyuv2", "nyud")]:
        (tmp_path / "data" / name).mkdir(parents=True)  # the parent's name counts too: not this test's own
        assert detect_dataset(tmp_path / "data" / name) == expected, name
    assert dataset_named("none") is None
    make_class_folders(tmp_path / "data" / "nyu_my_shapes", "depth", classes=("circle", "square"))
    result = invoke("zeroshot", "--root", str(tmp_path / "data" / "nyu_my_shapes"), "--modality", "depth",
                    "--dataset", "none", "--model", "random:tiny")
    assert result["dataset"] is None and result["classes"] == ["circle", "square"] and result["baselines"] == {}


def test_a_fine_tune_saved_inside_a_published_checkpoints_folder_gets_no_paper_numbers():
    assert published_checkpoint("/runs/LanguageBind_Video_FT/epoch3", "video") is None
    assert published_checkpoint("/runs/LanguageBind_Video_FT/", "video") == "languagebind:video_ft"
    assert published_checkpoint("/hf/models--LanguageBind--LanguageBind_Audio/snapshots/0123abc/sub", "audio") is None


def test_emergent_records_its_sample_and_refuses_a_gallery_of_one_pair(tmp_path):
    make_paired(tmp_path / "LLVIP", n_pairs=10, a_dir="visible/test", b_dir="infrared/test")
    args = ["emergent", "--root", str(tmp_path / "LLVIP"), "--model", "random:tiny", "--b", "infrared",
            "--a-dir", "visible/test", "--b-dir", "infrared/test"]
    result = invoke(*args, "--sample", "0.3", "--seed", "7")
    assert result["n_items"] == 3 and result["selection"] == {
        "folders": [str(tmp_path / "LLVIP" / "visible" / "test"), str(tmp_path / "LLVIP" / "infrared" / "test")],
        "sample": 0.3, "seed": 7}
    with pytest.raises(ValueError, match=r"only one pair of .* was sampled; retrieval needs two or more \(raise"):
        run_emergent("random:tiny", tmp_path / "LLVIP", a="image", b="infrared", a_dir="visible/test",
                     b_dir="infrared/test", sample=0.1, seed=1)


def test_llvip_zero_shot_cuts_person_and_background_crops_from_the_release_once(tmp_path):
    """The reference's crops were never released: ours are every person box, and a same-size crop of the same frame
    that overlaps no box, seeded by the frame; cut once into the bench cache, the same on every run."""
    from PIL import Image

    from bindsearch.evaluation.llvip import llvip_crops

    boxes = make_llvip(tmp_path / "data" / "LLVIP", n_frames=3)
    root = tmp_path / "data" / "LLVIP"
    crops = llvip_crops(root, "infrared", tmp_path / "cache")
    assert (crops.frames, crops.persons, crops.small, crops.unannotated) == (2, 4, 2, 1)
    assert crops.backgrounds == 4
    frame = np.asarray(Image.open(root / "infrared" / "test" / "190001.jpg"))
    for k, (x0, y0, x1, y1) in enumerate(boxes[0][:2]):
        person = np.asarray(Image.open(crops.folder / "person" / f"190001_{k}.png"))
        background = np.asarray(Image.open(crops.folder / "background" / f"190001_{k}.png"))
        assert person.shape == background.shape == (y1 - y0, x1 - x0, 3)
        assert np.array_equal(person, frame[y0:y1, x0:x1])
        assert person.mean() > 150 and background.mean() < 100  # a warm body; the cool scene around it
    before = {p.name: p.read_bytes() for p in crops.folder.rglob("*.png")}
    again = llvip_crops(root, "infrared", tmp_path / "cache2")  # cut anew elsewhere: the same crops
    assert {p.name: p.read_bytes() for p in again.folder.rglob("*.png")} == before

    result = invoke("zeroshot", "--root", str(root), "--model", "random:tiny")
    assert result["dataset"] == "llvip" and result["classes"] == ["background", "person"]
    assert result["n_items"] == 8 and result["modalities"] == ["infrared"]
    assert any(n.startswith("crops cut by bindsearch from 2 annotated test frames: 4 person boxes") for n in
               result["notes"])
    with pytest.raises(DatasetLayoutError, match=r"inside LLVIP's release: pass --root .*LLVIP, from whose"):
        read_classification(root / "infrared" / "test", "infrared")
    for name in ("background", "person"):  # crops of one's own, kept inside the release, are class folders
        shutil.copytree(crops.folder / name, root / "my_crops" / name)
    assert read_classification(root / "my_crops", "infrared").classnames == ["background", "person"]


def test_llvip_crops_follow_an_edited_box_and_no_cache_keeps_none(tmp_path, monkeypatch):
    """The crops were keyed on the XML's size only (a box edited to a number of the same length kept the old crops)
    and were cut into the bench cache, and reused from it, even with --no-cache ("store nothing")."""
    from PIL import Image

    from bindsearch.evaluation.llvip import llvip_crops

    root = tmp_path / "LLVIP"
    make_llvip(root, n_frames=3)
    first = llvip_crops(root, "infrared", tmp_path / "cache")
    xml = root / "Annotations" / "190001.xml"
    xml.write_text(xml.read_text().replace("<xmin>10</xmin>", "<xmin>16</xmin>"))  # same length, box 6 px narrower
    second = llvip_crops(root, "infrared", tmp_path / "cache")
    assert second.folder != first.folder
    with Image.open(first.folder / "person" / "190001_0.png") as old, \
            Image.open(second.folder / "person" / "190001_0.png") as new:
        assert (old.size, new.size) == ((24, 58), (18, 58))

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = invoke("zeroshot", "--root", str(root), "--model", "random:tiny", "--no-cache")
    assert result["dataset"] == "llvip" and result["n_items"] == 8 and "path" not in result["cache"]
    assert not (tmp_path / "home" / "cache").exists() and list((tmp_path / "tmp").iterdir()) == []
    assert any("(cut for this run only, not kept)" in n for n in result["notes"])
