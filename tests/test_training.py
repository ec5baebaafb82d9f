"""Training: loss, LoRA, masking, a tiny tower on BindWorld pairs, checkpoints, resume, a new 'tactile' modality."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bindsearch.media.writers import write_depth_png
from bindsearch.models import load_model
from bindsearch.models.config import Preprocess
from bindsearch.models.mini import MiniModel
from bindsearch.models.tower import VisionTower
from bindsearch.training import PairSet, TrainConfig, contrastive_loss, read_pairs, tower_config, train
from bindsearch.training.mini import world_pairs
from bindsearch.training.trainer import LoRALinear, add_lora, masked_features, merge_lora
from bindsearch.world import TRAIN, WorldConfig, make_world

PREP = Preprocess(image_size=32)
TINY = tower_config(width=32, layers=2, input_size=(32, 32), patch=8)


def test_contrastive_loss_is_symmetric_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    media = F.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    text = F.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    scale = torch.tensor(np.log(1 / 0.07))
    logits = media @ text.T / 0.07
    expected = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert torch.allclose(contrastive_loss(media, text, scale), expected, atol=1e-5)
    # Items of one group are positives of each other: the target spreads evenly over the group.
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    same = (groups[:, None] == groups[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    reference = (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.T.log_softmax(1)).sum(1).mean())
    assert torch.allclose(contrastive_loss(media, text, scale, groups), reference / 2, atol=1e-5)
    groups = torch.arange(6)
    assert torch.allclose(contrastive_loss(media, text, scale, groups), expected, atol=1e-5)
    # Hard negative captions join each item's media -> text softmax, and only that one.
    negatives = F.normalize(torch.randn(6, 2, 8, generator=gen), dim=-1)
    widened = torch.cat([logits, torch.einsum("bd,bkd->bk", media, negatives) / 0.07], dim=1)
    hard = (F.cross_entropy(widened, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert torch.allclose(contrastive_loss(media, text, scale, None, negatives), hard, atol=1e-5)
    assert contrastive_loss(media, text, scale, None, negatives) > expected


def test_lora_starts_at_the_base_and_merges_exactly():
    tower = VisionTower(TINY)
    x = torch.randn(2, 3, 32, 32)
    before = tower(x)
    add_lora(tower, rank=4, alpha=8)
    assert torch.allclose(tower(x), before, atol=1e-6)  # B = 0
    trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for m in tower.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_()
    adapted = tower(x)
    assert not torch.allclose(adapted, before, atol=1e-3)
    merge_lora(tower)
    assert not any(isinstance(m, LoRALinear) for m in tower.modules())
    assert torch.allclose(tower(x), adapted, atol=1e-4)


def test_masking_keeps_the_share_asked_and_ratio_zero_is_the_tower():
    torch.manual_seed(0)
    tower = VisionTower(TINY).eval()
    x = torch.randn(3, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(masked_features(tower, x, 0.0, gen), tower(x), atol=1e-6)
    seen = []
    tower.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    masked_features(tower, x, 0.5, gen)
    assert seen[-1] == (3, 1 + 8, 32)  # 16 patches -> 8 kept, plus CLS


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    make_world(directory, 24, seed=3, splits={"train": 1.0, "val": 0.0, "test": 0.0}, config=WorldConfig(size=32),
               workers=1)
    return directory


@pytest.fixture(scope="module")
def depth_pairs(world) -> PairSet:
    return PairSet.build("depth", world_pairs(world, "depth", "train"), PREP, cache=None, workers=0)


def _config(**overrides) -> TrainConfig:
    settings = dict(steps=40, batch_size=16, lr=3e-3, warmup=5, mask_ratio=0.5, val_every=20, save_every=10)
    return TrainConfig("depth", TINY, PREP, **{**settings, **overrides})


def test_tiny_tower_learns_and_its_checkpoint_reloads_identically(tmp_path, depth_pairs):
    result = train(_config(), depth_pairs, tmp_path / "ckpt", val=depth_pairs)
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "ckpt" / "train_log.jsonl").read_text().splitlines())]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    assert set(result.validation) == {"t2x_R@1", "t2x_R@5", "x2t_R@1"}

    reloaded = load_model(str(tmp_path / "ckpt"), device="cpu")
    assert isinstance(reloaded, MiniModel) and reloaded.modalities == ("text", "depth")
    assert reloaded.dim == 384 and reloaded.checkpoint != "untrained"
    trained = result.model.eval()
    inputs = depth_pairs.inputs[:5].float()
    with torch.no_grad():
        expected = F.normalize(trained.encode_batch("depth", inputs), dim=-1)
    assert torch.equal(reloaded.embed("depth", inputs), expected)
    assert 2.0 < reloaded.logit_scale("depth") < 100.0

    # Beside the shipped towers, in one space (MiniLM's): the trained depth tower takes the shipped one's place.
    from bindsearch.models.base import UnsupportedModalityError
    from bindsearch.models.loading import ModelLoadError

    with pytest.raises(UnsupportedModalityError, match=r"e\.g\. --model .*ckpt,bindsearch-mini"):
        reloaded.check_modality("audio")
    both = load_model(f"{tmp_path / 'ckpt'},bindsearch-mini", device="cpu")
    shipped = load_model("bindsearch-mini", device="cpu")
    assert set(both.modalities) == set(shipped.modalities) and both.checkpoint.startswith(reloaded.checkpoint)
    assert torch.equal(both.embed("depth", inputs), expected)
    import soundfile

    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.sin(np.arange(16000 * 2) * 0.05).astype(np.float32), 16000)
    assert torch.equal(both.encode("audio", [wav]), shipped.encode("audio", [wav]))
    for other, says in (("random:tiny", "random:tiny is a model of its own"),
                        ("languagebind:audio", "anchored on CLIP's text tower .* cannot share a space")):
        with pytest.raises(ModelLoadError, match=says):  # before: "does not say which modality it encodes"
            load_model(f"{tmp_path / 'ckpt'},{other}", device="cpu")


def test_time_reversed_videos_are_flipped_recaptioned_and_batched_with_their_originals(world):
    prep = Preprocess(image_size=32, num_frames=4)
    forward = PairSet.build("video", world_pairs(world, "video", "train"), prep, cache=None, workers=0)
    pairs = world_pairs(world, "video", "train", time_reversed=True)
    both = PairSet.build("video", pairs, prep, cache=None, workers=0)
    n = len(forward)
    assert len(both) == 2 * n and both.partner is not None
    assert torch.equal(both.partner[:n], torch.arange(n, 2 * n)) and torch.equal(both.partner[n:], torch.arange(n))
    # The reversed item is its original with the frames (dim 1 of (c, t, h, w)) in the opposite order.
    assert torch.equal(both.inputs[:n], forward.inputs)
    assert torch.equal(both.inputs[n:], forward.inputs.flip(2))
    # Its captions and group name the opposite direction and keep everything else.
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    for i in range(n):
        original = dict(part.split("=") for part in pairs.groups[i].split("|"))
        reversed_ = dict(part.split("=") for part in pairs.groups[n + i].split("|"))
        assert reversed_ == {**original, "direction": opposite[original["direction"]]}
        assert pairs.captions[n + i] and all(opposite[original["direction"]] in c for c in pairs.captions[n + i])
    # A batch holds whole pairs: every item's partner is in it.
    batch = both.sample(10, np.random.default_rng(0))
    assert len(batch.inputs) == 10 and batch.negatives is None
    for x in batch.inputs:
        assert any(torch.equal(x.flip(1), y) for y in batch.inputs)
    with pytest.raises(ValueError, match="direction"):
        world_pairs(world, "depth", "train", time_reversed=True)


def test_hard_negative_captions_change_one_attribute_and_come_with_their_items(world):
    pairs = world_pairs(world, "video", "train", time_reversed=True, hard_negatives={"speed": 2, "size": 5})
    assert pairs.negatives is not None and all(len(n) == 2 + 2 for n in pairs.negatives)
    for captions, negatives, group in zip(pairs.captions, pairs.negatives, pairs.groups, strict=True):
        values = dict(part.split("=") for part in group.split("|"))
        assert not set(negatives) & set(captions)
        for negative, attribute in zip(negatives, ("speed", "speed", "size", "size"), strict=True):
            phrases = TRAIN.phrases[attribute]
            said = {value for value, wordings in phrases.items() if any(w in negative for w in wordings)}
            assert values[attribute] not in said and said, (negative, values)
    prep = Preprocess(image_size=32, num_frames=4)
    data = PairSet.build("video", pairs, prep, cache=None, workers=0)
    assert data.negatives.shape == (len(pairs), 4, 384)
    assert torch.allclose(data.negatives.norm(dim=-1), torch.ones(len(pairs), 4), atol=1e-4)
    batch = data.sample(8, np.random.default_rng(1))
    assert batch.negatives.shape == (8, 4, 384)
    # Each item's hard negatives sit closer to its own captions than to the batch's other captions.
    own = torch.einsum("bkd,bd->bk", batch.negatives, batch.text).mean()
    other = torch.einsum("bkd,cd->bkc", batch.negatives, batch.text).mean()
    assert own > other
    with pytest.raises(ValueError, match="does not sense"):
        world_pairs(world, "audio", "train", hard_negatives={"colour": 1})


def test_training_resumes_where_it_was_interrupted(tmp_path, depth_pairs):
    config = _config(steps=16, val_every=100, save_every=4)
    whole = train(config, depth_pairs, tmp_path / "whole")
    train(config, depth_pairs, tmp_path / "cut", stop_after=8)  # the "kill": last checkpoint at step 8
    assert torch.load(tmp_path / "cut" / "train_state.pt", weights_only=True)["step"] == 8
    resumed = train(config, depth_pairs, tmp_path / "cut")
    assert resumed.step == whole.step == 16
    logged = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 17))
    a = torch.load(tmp_path / "whole" / "train_state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "train_state.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-5), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        assert int(state["step"]) == int(b["optimizer"]["state"][key]["step"]) == 16
        assert torch.allclose(state["exp_avg_sq"], b["optimizer"]["state"][key]["exp_avg_sq"], atol=1e-7)
    with pytest.raises(ValueError, match=r"different training config \(lr 0\.003 -> 0\.01\)"):
        train(_config(steps=16, lr=1e-2), depth_pairs, tmp_path / "cut")
    other = PairSet(depth_pairs.inputs.flip(0), depth_pairs.text, depth_pairs.caption_item,
                    depth_pairs.first_caption, depth_pairs.groups)  # the same captions on other files
    with pytest.raises(ValueError, match="was trained on other pairs"):  # before: went on with the other data
        train(config, other, tmp_path / "cut")
    train(config, other, tmp_path / "cut", resume=False, stop_after=3)  # started over: its log starts over too
    logged = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]


def test_a_log_line_torn_by_a_crash_is_dropped_and_an_earlier_bad_line_named(tmp_path):
    from bindsearch.training.trainer import _truncate_log

    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 2.7}\n{"step": 2, "loss": 2.6}\n{"step": 3, "lo')
    _truncate_log(log, 2)  # before: "Expecting ',' delimiter", and every resumption refused
    assert log.read_text() == '{"step": 1, "loss": 2.7}\n{"step": 2, "loss": 2.6}\n'
    log.write_text('{"step": 1, "loss": 2.7}\n{"step": 2, "lo\n{"step": 3, "loss": 2.5}\n')
    with pytest.raises(ValueError, match=f"^{re.escape(str(log))}: line 2 is not a training record"):
        _truncate_log(log, 3)


def test_a_pairs_csv_with_a_short_row_an_empty_caption_or_other_bytes_is_one_line(tmp_path):
    for name, text, says in (("short.csv", "path,caption\na.png,a cat\nb.png\n", "short.csv line 3: a row needs"),
                             ("empty.csv", "path,caption\na.png,\n", "empty.csv line 2: the caption is empty")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=says):
            read_pairs(tmp_path / name)
    (tmp_path / "latin.csv").write_bytes("path,caption\na.png,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: not UTF-8 text"):
        read_pairs(tmp_path / "latin.csv")


def test_a_file_listed_under_two_spellings_is_one_item_with_both_captions(tmp_path, monkeypatch):
    """Told apart by spelling, one file was two items, each the other's negative (validation R@1 0 of 100)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pairs.csv").write_text(
        f"path,caption\na.png,a cat\n../data/a.png,a cat on a mat\n{tmp_path / 'data' / 'a.png'},a small cat\n"
        "./b.png,a dog\n")
    monkeypatch.chdir(tmp_path)
    pairs = read_pairs("data/pairs.csv")  # the CSV named relative to the current folder, its rows to the CSV
    assert pairs.paths == [tmp_path / "data" / "a.png", tmp_path / "data" / "b.png"]
    assert pairs.captions == [["a cat", "a cat on a mat", "a small cat"], ["a dog"]]


def test_bf16_autocast_follows_the_cpu_unless_asked_and_a_resumption_may_differ(tmp_path, depth_pairs, monkeypatch):
    from bindsearch.training import trainer

    for units in (False, True):
        monkeypatch.setattr(trainer, "cpu_runs_bf16", lambda units=units: units)
        with trainer._autocast(None):
            assert torch.is_autocast_enabled("cpu") is units
        with trainer._autocast(not units):  # asked for: as asked
            assert torch.is_autocast_enabled("cpu") is (not units)
    assert TrainConfig("depth", TINY, PREP).bf16 is None
    train(_config(steps=6, val_every=100, save_every=3, bf16=False), depth_pairs, tmp_path / "cut", stop_after=3)
    resumed = train(_config(steps=6, val_every=100, save_every=3, bf16=True), depth_pairs, tmp_path / "cut")
    assert resumed.step == 6  # the arithmetic is no part of what a checkpoint trains: another CPU may resume it
    monkeypatch.setattr(trainer, "cpu_runs_bf16", lambda: True)
    train(_config(steps=1, val_every=100), depth_pairs, tmp_path / "auto")
    assert json.loads((tmp_path / "auto" / "train_config.json").read_text())["bf16"] is True  # what ran, not null


def test_lora_run_starts_from_a_checkpoint(tmp_path, depth_pairs):
    base = train(_config(steps=5, val_every=100), depth_pairs, tmp_path / "base")
    lora = train(_config(steps=5, lora_rank=2, init=str(base.directory), val_every=100), depth_pairs,
                 tmp_path / "lora")
    changed = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in changed) and not any(n.endswith("fc1.weight") for n in changed)
    # Started from the checkpoint: the frozen weights are the base run's, not a fresh initialisation.
    trained, started_from = dict(lora.model.named_parameters()), dict(base.model.named_parameters())
    frozen = [n for n in trained if n.endswith("fc1.weight")]
    assert frozen and all(torch.equal(trained[n], started_from[n]) for n in frozen)
    assert isinstance(load_model(str(tmp_path / "lora"), device="cpu"), MiniModel)  # merged on save


# -- a modality the library has never heard of ---------------------------------------------------
SIDES = {"left": (8, 4), "right": (8, 12), "top": (3, 8), "bottom": (13, 8)}


def _pressure_map(side: str, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:16, 0:16]
    cy, cx = SIDES[side]
    blob = np.exp(-((yy - cy - rng.normal(0, 0.5)) ** 2 + (xx - cx - rng.normal(0, 0.5)) ** 2) / 6.0)
    return (blob * rng.uniform(20, 40) + rng.uniform(0, 2, (16, 16))).astype(np.float32)  # kPa


def test_a_new_tactile_modality_trains_indexes_and_searches(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    (tmp_path / "maps").mkdir()
    config = tmp_path / "tactile.json"
    config.write_text('{"name": "tactile", "adapter": "array", "value_range": [0, 45], '
                      '"preprocess": {"image_size": 16}}')
    with (tmp_path / "pairs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "caption", "group"])
        for i in range(48):
            side = list(SIDES)[i % 4]
            np.save(tmp_path / "maps" / f"{i:02d}.npy", _pressure_map(side, rng))
            for caption in (f"pressure on the {side}", f"a touch at the {side} edge"):
                writer.writerow([f"maps/{i:02d}.npy", caption, side])
    assert len(read_pairs(tmp_path / "pairs.csv")) == 48

    code, out, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "tactile", "--out",
                             tmp_path / "tactile-model", "--modality-config", config, "--steps", "200",
                             "--batch-size", "16", "--lr", "1e-2", "--warmup", "5", "--mask-ratio", "0",
                             "--val-every", "200", "--width", "32", "--layers", "2",
                             "--patch", "4", "--json")
    assert code == 0, err

    from bindsearch.collection import Collection

    model = load_model(str(tmp_path / "tactile-model"), device="cpu")
    assert model.modalities == ("text", "tactile")
    assert model.identity.modalities == ("text", "tactile")
    collection = Collection.open(tmp_path / "touch", model=model)
    report = collection.add([tmp_path / "maps"], modality="tactile", workers=0)
    assert report.new == 48 and report.ok
    hits = 0
    for side in SIDES:
        top = collection.search(text=f"pressure on the {side}", k=3)
        assert all(h.modality == "tactile" for h in top)
        hits += sum(int(Path(h.path).stem) % 4 == list(SIDES).index(side) for h in top)
    assert hits >= 10  # of 12: each side's top three are maps pressed on that side
    from bindsearch import modalities

    modalities._REGISTERED.discard("tactile")  # as a new process starts: known once the model is loaded
    code, out, err = run_cli("search", "pressure on the left", "-c", tmp_path / "touch", "--modality", "tactile",
                             "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 10, err  # a modality of one's own is known once loaded
    modalities._REGISTERED.discard("tactile")
    # By example: an indexed map queries by its stored vector (no model loaded to teach the name), an unindexed one
    # as the modality asked for. Both said "unknown modality 'tactile'".
    code, out, err = run_cli("search", "-c", tmp_path / "touch", "--file", tmp_path / "maps" / "00.npy", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 10, err
    np.save(tmp_path / "new.npy", _pressure_map("left", rng))
    modalities._REGISTERED.discard("tactile")
    code, out, err = run_cli("search", "-c", tmp_path / "touch", "--file", tmp_path / "new.npy", "--file-modality",
                             "tactile", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 10, err
    modalities._REGISTERED.discard("tactile")
    code, out, err = run_cli("index", tmp_path / "maps", "-c", tmp_path / "touch2", "--modality", "tactile",
                             "--model", tmp_path / "tactile-model", "--json")
    assert code == 0 and json.loads(out)["new"] == 48, err  # before: refused as unknown before the model loaded
    code, out, err = run_cli("index", tmp_path / "maps", "-c", tmp_path / "touch3", "--modality", "tactil",
                             "--model", tmp_path / "tactile-model")
    assert code == 2 and "unknown modality 'tactil'" in err and not (tmp_path / "touch3").exists()
    modalities._REGISTERED.discard("tactile")

    # Classified and benchmarked like any modality: its labels as written (it has no templates of LanguageBind's).
    labels = ",".join(f"pressure on the {side}" for side in SIDES)
    code, out, err = run_cli("classify", tmp_path / "maps" / "00.npy", "--file-modality", "tactile", "--labels", labels,
                             "--model", tmp_path / "tactile-model", "--json")
    assert code == 0, err  # before: unknown modality 'tactile'
    assert json.loads(out)["labels"][0]["label"] == f"pressure on the {list(SIDES)[0]}"
    for i in range(48):
        side = tmp_path / "classes" / list(SIDES)[i % 4]
        side.mkdir(parents=True, exist_ok=True)
        (side / f"{i:02d}.npy").write_bytes((tmp_path / "maps" / f"{i:02d}.npy").read_bytes())
    code, out, err = run_cli("bench", "zeroshot", "--root", tmp_path / "classes", "--modality", "tactile",
                             "--model", tmp_path / "tactile-model", "--json", "--no-cache")
    assert code == 0, err
    # One checkpoint with the shipped towers and this one: in a process that has not built it yet, a text search
    # builds only the towers it needs, yet the collection's own modality must stay one it knows (it comes with
    # its tower, which is then built too).
    import subprocess
    import sys

    from safetensors.torch import load_file, save_file

    from bindsearch.models.specs import MINI_DIR

    six = tmp_path / "six"
    six.mkdir()
    configs = [json.loads((d / "config.json").read_text()) for d in (MINI_DIR, tmp_path / "tactile-model")]
    (six / "config.json").write_text(json.dumps({**configs[0], "towers": {**configs[0]["towers"],
                                                                          **configs[1]["towers"]}}))
    save_file({**load_file(MINI_DIR / "model.safetensors"), **load_file(tmp_path / "tactile-model" /
                                                                         "model.safetensors")},
              str(six / "model.safetensors"))
    touch = Collection.open(tmp_path / "six-touch", model=str(six))
    assert touch.add([tmp_path / "maps"], modality="tactile", workers=0).new == 48
    script = ("import sys\nfrom cli.main import main\n"
              "sys.argv = ['bindsearch', 'search', 'pressure on the left', '-c', sys.argv[1], '--json']\nmain()\n")
    found = subprocess.run([sys.executable, "-c", script, str(tmp_path / "six-touch")], capture_output=True,
                           text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert found.returncode == 0 and '"modality": "tactile"' in found.stdout, found.stderr[-2000:]
    assert json.loads(out)["directions"]["tactile->class"]["top1"] >= 50  # four sides: chance is 25
    # Opening the collection teaches its modality from config.json alone: torch is not imported (info took 1 s
    # more), and a config.json of other bytes is left to a model load to report (info and remove failed on it).
    script = ("import sys\nfrom bindsearch import Collection\nCollection.open(sys.argv[1]).stats()\n"
              "print('torch' in sys.modules)\n")
    opened = subprocess.run([sys.executable, "-c", script, str(tmp_path / "touch")], capture_output=True,
                            text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert opened.returncode == 0 and opened.stdout.strip() == "False", opened.stderr[-2000:]
    (tmp_path / "tactile-model" / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    code, out, err = run_cli("info", "-c", tmp_path / "touch", "--json")
    assert code == 0 and json.loads(out)["files"] == 48, err


@pytest.fixture
def registry(monkeypatch):
    """`bindsearch.media`'s modalities and extensions as they were before the test registers one."""
    from bindsearch import media, modalities

    monkeypatch.setattr(media, "EXTENSIONS", dict(media.EXTENSIONS))
    monkeypatch.setattr(media, "_LOADERS", dict(media._LOADERS))
    monkeypatch.setattr(modalities, "_REGISTERED", set(modalities._REGISTERED))
    return media


@pytest.mark.parametrize("body, message", [
    ('"extensions": [".tact", ".png"]', r"\.png files are image \(a built-in modality\); give tactile extensions"),
    ('"extensions": ["npy"]', r"\.npy files are depth"),  # before: "npy" kept, never matching a suffix
    ('"extensions": "tact"', r"extensions must be a list, e\.g\. \[\".npy\"\], not \"tact\""),  # before: t, a, c, t
    ('"adaptor": "image"', r"unknown key 'adaptor'; the keys are name, adapter, extensions, value_range, preprocess"),
    ('"adapter": "arrays"', r"adapter must be one of array, image, not 'arrays'"),
    ('"value_range": [45, 0]', r"value_range must be \[low, high\], finite numbers with low < high, not \[45"),
    ('"value_range": [0, NaN]', r"value_range must be \[low, high\], finite"),
    ('"value_range": [0]', r"value_range must be \[low, high\] \(two numbers\) or null, not \[0\]"),  # IndexError
    ('"preprocess": {"image_size": "16"}', r'preprocess image_size must be a whole number of at least 1, not "16"'),
    ('"preprocess": {"mean": [0.5]}', r"preprocess mean must be a list of 3 numbers, not \[0\.5\]"),
    ('"preprocess": {"imagesize": 16}', r"unknown preprocess key 'imagesize'; the keys are image_size, mean"),
])
def test_a_modality_config_that_would_train_on_something_else_is_refused(tmp_path, registry, body, message):
    from bindsearch.training.trainer import read_modality_config

    config = tmp_path / "tactile.json"
    config.write_text('{"name": "tactile", ' + body + "}")
    extensions = dict(registry.EXTENSIONS)
    with pytest.raises(ValueError, match=f"^{re.escape(str(config))}: {message}"):
        read_modality_config(config)
    assert registry.EXTENSIONS == extensions and registry.guess_modality("photo.png")[0] == "image"


@pytest.mark.parametrize("name, message", [
    ("thermal", "thermal is a built-in modality (infrared); give a new modality a name of its own"),  # trained, unread
    ("Depth", "Depth is a built-in modality (depth)"),
    ("Sketch", "a modality's name is lower case, as names are matched: give 'sketch', not 'Sketch'"),  # a traceback
])
def test_a_modality_config_named_as_a_built_in_or_in_capitals_is_refused(tmp_path, registry, name, message):
    from bindsearch.training.trainer import read_modality_config

    config = tmp_path / "new.json"
    config.write_text(json.dumps({"name": name, "adapter": "image", "extensions": [".skt"]}))
    with pytest.raises(ValueError, match=f"^{re.escape(f'{config}: {message}')}"):
        read_modality_config(config)
    assert registry.guess_modality("a.skt")[0] is None


def test_a_modality_config_reads_what_the_shipped_towers_read_unless_told(tmp_path, registry):
    """Without "preprocess" (or with only a mean), a tower of one's own read LanguageBind's 224 px: 6.5x slower."""
    from bindsearch.training.trainer import SMALL_INPUT, read_modality_config

    config = tmp_path / "tactile.json"
    config.write_text('{"name": "tactile"}')
    assert read_modality_config(config)[1] == SMALL_INPUT
    config.write_text('{"name": "tactile", "preprocess": {"mean": [0.5, 0.5, 0.5]}}')
    assert read_modality_config(config)[1] == replace(SMALL_INPUT, mean=(0.5, 0.5, 0.5))


def test_a_checkpoint_whose_modality_claims_a_built_in_extension_still_loads(tmp_path, registry):
    """Trained before such configs were refused, its tower took .npy depth maps over; refusing it at load would
    leave the user's model unloadable: the extension is left to depth, with a warning (found by a review)."""
    from bindsearch.models.mini import InputConfig

    # What `train tower` refuses now, written before: a reversed value_range, a suffix of two dots, .txt (text's).
    claims = InputConfig(name="tactile", extensions=(".npy", ".txt", ".tar.gz", ".tact"), value_range=(1.0, 0.0))
    with pytest.warns(UserWarning, match=r"the tactile tower claims \.npy, \.txt, which built-in modalities read: "
                                         r"those files stay depth, text; pick tactile files with --modality tactile"):
        model = MiniModel({"tactile": TINY}, {"tactile": PREP}, {"tactile": claims})
    assert model.inputs["tactile"].extensions == (".tar.gz", ".tact")
    assert registry.guess_modality("map.npy")[0] == "depth" and registry.guess_modality("map.tact")[0] == "tactile"


def test_a_full_disk_while_writing_a_checkpoint_is_an_os_error_naming_the_file(tmp_path, depth_pairs, monkeypatch):
    from safetensors import SafetensorError

    from cli.main import exit_status

    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "train_config.json").write_text("{}")  # a run begun here
    (out / "train_state.pt.tmp").symlink_to("/dev/full")  # the training state, written after the weights
    with pytest.raises(OSError, match="No space left on device") as caught:  # before: RuntimeError, "unexpected pos"
        train(_config(steps=1), depth_pairs, out)
    assert caught.value.filename == str(out / "train_state.pt") and exit_status(caught.value) == 1
    assert not (out / "train_state.pt.tmp").exists()

    def filled_part_way(state, handle):  # as torch's zip writer fails on a disk that fills mid-file (found by a review)
        handle.write(b"\0" * 100)
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    (out / "train_state.pt.tmp").unlink(missing_ok=True)
    monkeypatch.setattr("bindsearch.training.trainer.torch.save", filled_part_way)
    with pytest.raises(OSError, match="No space left on device") as caught:
        train(_config(steps=1), depth_pairs, out)
    assert caught.value.filename == str(out / "train_state.pt") and not (out / "train_state.pt.tmp").exists()
    monkeypatch.undo()

    def full(state, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    with pytest.raises(OSError, match="No space left on device") as caught:  # before: SafetensorError, a traceback
        MiniModel({"depth": TINY}, {"depth": PREP}).save(tmp_path / "model")
    assert caught.value.filename == str(tmp_path / "model" / "model.safetensors") and exit_status(caught.value) == 1
    assert not (tmp_path / "model" / "model.safetensors.tmp").exists()


def test_a_modality_configs_extensions_may_leave_out_their_dot(tmp_path, registry):
    from bindsearch.training.trainer import read_modality_config

    config = tmp_path / "tactile.json"
    config.write_text('{"name": "tactile", "extensions": ["TACT", ".Tmap"], "value_range": [0, 45]}')
    input_config, _ = read_modality_config(config)
    assert input_config.extensions == (".tact", ".tmap") and input_config.value_range == (0.0, 45.0)
    assert registry.guess_modality("map.tact")[0] == registry.guess_modality("map.TMAP")[0] == "tactile"


def test_an_image_tower_starts_a_video_tower_as_its_frame_average_plus_frame_order():
    from bindsearch.training.trainer import _load_tower

    torch.manual_seed(0)
    image = VisionTower(TINY)
    for p in image.parameters():
        p.data.normal_(0, 0.1)
    video = VisionTower(tower_config(width=32, layers=2, input_size=(32, 32), patch=8, frames=4))
    _load_tower(video, image, seed=0)
    frames = torch.randn(2, 3, 4, 32, 32)
    expected = torch.stack([image(frames[:, :, t]) for t in range(4)]).mean(0)
    # Frame order comes from the temporal embeddings alone, random as in LanguageBind (std width ** -0.5) ...
    embeddings = torch.stack([block.temporal_embedding.detach() for block in video.encoder.layers])
    assert abs(float(embeddings.std()) - 32**-0.5) < 0.03
    assert not torch.allclose(video(frames), video(frames.flip(2)), atol=1e-6)
    # ... and without them the video tower is the image tower averaged over frames.
    for block in video.encoder.layers:
        block.temporal_embedding.data.zero_()
    assert torch.allclose(video(frames), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"^the --init tower \(width 32, 2 layers, patch 8, 32x32 input, 3 channels\) "
                       r"is shaped differently from the one asked for \(width 64, 2 layers, .*\); give the --width, "
                       "--layers and --patch it was trained with"):
        _load_tower(VisionTower(tower_config(width=64, layers=2, input_size=(32, 32), patch=8)), image, seed=0)


def test_temporal_blocks_can_train_at_their_own_rate():
    from bindsearch.training.trainer import _param_groups

    video = tower_config(width=32, layers=2, input_size=(32, 32), patch=8, frames=4)
    model = MiniModel({"video": video}, {"video": Preprocess(image_size=32, num_frames=4)})
    config = TrainConfig("video", video, Preprocess(image_size=32, num_frames=4), lr=1e-3, temporal_lr=1e-2)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = _param_groups(model, config)
    rates = {names[id(p)]: group.get("lr", config.lr) for group in groups for p in group["params"]}
    assert len(rates) == len(names)  # every parameter once
    temporal = {n for n in names.values() if ".temporal_" in n}
    assert temporal and all(rates[n] == 1e-2 for n in temporal)
    assert all(rate == 1e-3 for n, rate in rates.items() if n not in temporal and "logit_scales" not in n)
    # Left at 0 it is the usual three groups, so checkpoints written before the option resume unchanged.
    assert len(_param_groups(model, TrainConfig("video", video, Preprocess(image_size=32, num_frames=4)))) == 3


def test_a_checkpoint_from_before_a_new_setting_still_resumes():
    from bindsearch.training.trainer import _comparable

    saved = _config().to_dict()
    del saved["temporal_lr"]  # written before the setting existed
    assert _comparable(saved) == _comparable(_config().to_dict(), saved)
    assert _comparable(saved) != _comparable(_config(temporal_lr=1e-2).to_dict(), saved)
    # How the data was built is part of the run: a changed recipe does not resume an old checkpoint.
    assert _comparable(saved) != _comparable(_config(extra={"time_reversed": True}).to_dict(), saved)


def test_the_decode_cache_sees_media_rewritten_at_the_same_size(tmp_path):
    """Keyed on sizes alone, a world made again with another seed (same sizes) trained on the old media."""
    from bindsearch.media.writers import write_image
    from bindsearch.training.data import decode_inputs

    prep = Preprocess(image_size=16)
    path = write_image(tmp_path / "a.png", np.full((16, 16, 3), 40, np.uint8))
    first, _ = decode_inputs("image", [path], prep, cache=tmp_path / "cache", workers=0)
    size = path.stat().st_size
    write_image(path, np.full((16, 16, 3), 200, np.uint8))
    assert path.stat().st_size == size  # a flat image compresses to the same size
    second, _ = decode_inputs("image", [path], prep, cache=tmp_path / "cache", workers=0)
    assert not torch.equal(first, second)
    assert torch.equal(second, decode_inputs("image", [path], prep, cache=None, workers=0)[0])


def test_lora_without_a_tower_to_adapt_is_refused_before_any_work(tmp_path, run_cli):
    (tmp_path / "pairs.csv").write_text("path,caption\na.png,a cat\n")
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "depth", "--out", tmp_path / "r",
                           "--lora-rank", "4")
    assert code == 2 and "give --init" in err and not (tmp_path / "r").exists()
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "depth", "--out", tmp_path / "r",
                           "--save-every", "0")
    assert code == 2 and not (tmp_path / "r").exists()  # before: ZeroDivisionError after decoding everything
    with pytest.raises(ValueError, match=r"patch 7 does not divide the input \(48 x 48\)"):
        tower_config(32, 1, (48, 48), 7)  # before: the last 6 rows and columns were never seen


def test_a_diverging_run_stops_at_its_first_non_finite_loss_and_keeps_its_last_good_checkpoint(tmp_path, depth_pairs):
    """At --lr 1e30 the loss went NaN at step 2 and training went on, saving NaN into every tensor of the checkpoint;
    the error came later, from the search, blaming the embeddings."""
    from bindsearch.training.trainer import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"became nan at step \d+: lower --lr \(now 1e\+30\) or raise --warmup"):
        train(_config(steps=20, lr=1e30, warmup=0, save_every=1), depth_pairs, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_training_refuses_a_folder_it_would_overwrite_a_text_tower_and_a_single_file(tmp_path, run_cli):
    from bindsearch.models.specs import MINI_DIR
    from bindsearch.training.trainer import _check_out

    shutil.copytree(MINI_DIR, tmp_path / "shipped-copy")
    pairs = tmp_path / "pairs.csv"
    for i in range(2):
        write_depth_png(tmp_path / f"d{i}.png", 500 + 40 * i + np.arange(32 * 32).reshape(32, 32))
    pairs.write_text("\ufeffpath,caption\nd0.png,a near wall\n")  # Excel's CSV UTF-8: a byte-order mark first
    code, _, err = run_cli("train", "tower", pairs, "--modality", "depth", "--out", tmp_path / "shipped-copy",
                           "--steps", "2", "--batch-size", "2")
    assert code == 2 and "shipped-copy holds config.json and no training run (train_state.pt)" in err
    kept = (tmp_path / "shipped-copy" / "model.safetensors").read_bytes()
    assert kept == (MINI_DIR / "model.safetensors").read_bytes()
    code, _, err = run_cli("train", "tower", pairs, "--modality", "depth", "--out", tmp_path / "one", "--steps", "2",
                           "--batch-size", "2")
    assert code == 2 and "pairs.csv holds 1 file(s) to train on; contrastive training needs two" in err
    started = tmp_path / "started"  # interrupted while writing its first checkpoint: the same command goes on
    started.mkdir()
    for name in ("config.json", "model.safetensors", "train_config.json", "train_log.jsonl"):
        (started / name).write_text("{}")
    _check_out(started)
    code, _, err = run_cli("train", "tower", pairs, "--modality", "text", "--out", tmp_path / "t", "--steps", "2")
    assert code == 2 and "text is the frozen anchor" in err and "Traceback" not in err
    pairs.write_text("\ufeffpath,caption\nd0.png,a near wall\nd1.png,a far wall\n")
    code, out, err = run_cli("train", "tower", pairs, "--modality", "depth", "--out", tmp_path / "two", "--steps", "2",
                             "--batch-size", "2", "--json")
    assert code == 0 and json.loads(out)["step"] == 2, err


def test_the_mini_recipe_refuses_a_work_folder_holding_another_world(tmp_path):
    from bindsearch.training.mini import _ensure_world

    make_world(tmp_path / "world", 6, seed=0, splits={"train": 1.0, "val": 0.0, "test": 0.0},
               config=WorldConfig(size=32), workers=1)
    _ensure_world(tmp_path / "world", 6, 0, workers=1)  # the same world: used as it is
    for n, seed in ((200, 0), (6, 1)):  # it trained on the old world and recorded the new n and seed
        with pytest.raises(ValueError, match=r"holds a BindWorld of 6 scenes \(seed 0\), not"):
            _ensure_world(tmp_path / "world", n, seed, workers=1)


def test_the_mini_recipe_refuses_a_world_too_small_to_validate_before_generating_it(tmp_path, run_cli):
    code, out, err = run_cli("train", "mini", "--n", "3", "--work", tmp_path / "work", "--out", tmp_path / "out")
    # before: the world was generated, then "none of the 0 depth files could be decoded"
    assert code == 2 and err == ("error: --n 3 leaves 3 training and 0 validation scenes; the recipe needs two and "
                                 "one: give --n 6 or more\n")
    assert not (tmp_path / "work").exists()


def test_a_negative_seed_is_refused_naming_the_option(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train mini's default --work and --out
    for command in (("tower", tmp_path / "pairs.csv", "--modality", "depth", "--out", tmp_path / "out"), ("mini",)):
        code, out, err = run_cli("train", *command, "--seed", "-1")
        assert code == 2 and "'--seed'" in err, err  # before: numpy's "expected non-negative integer"


def test_the_mini_recipe_ends_saying_how_to_load_what_it_wrote(tmp_path, run_cli, monkeypatch):
    def trained(out, work, n, seed):
        return {"world": {"n": n}}

    monkeypatch.setattr("bindsearch.training.mini.train_mini", trained)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("train", "mini")
    # the default --out: `--model bindsearch-mini` is the shipped model, whatever folder of that name is here
    assert code == 0 and json.loads(out) == {"world": {"n": 6000}}
    assert err == f"wrote bindsearch-mini: search with --model .{os.sep}bindsearch-mini\n"
    code, out, err = run_cli("train", "mini", "--out", tmp_path / "mine")
    assert code == 0 and err == f"wrote {tmp_path / 'mine'}: search with --model {tmp_path / 'mine'}\n"


def test_the_mini_recipe_draws_again_a_world_whose_overwrite_was_interrupted(tmp_path):
    from bindsearch.training.mini import _ensure_world
    from bindsearch.world import read_scenes

    _ensure_world(tmp_path / "world", 6, 0, workers=1)
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "world" / "image").iterdir()}

    def killed(count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # `world make --overwrite` of another seed, killed after its first scene
        make_world(tmp_path / "world", 6, seed=1, overwrite=True, progress=killed)
    assert (tmp_path / "world" / "image" / "s000000.png").read_bytes() != fresh["s000000.png"]
    _ensure_world(tmp_path / "world", 6, 0, workers=1)  # before: taken for the seed-0 world, scene 0 mislabelled
    assert {p.name: p.read_bytes() for p in (tmp_path / "world" / "image").iterdir()} == fresh
    assert len(read_scenes(tmp_path / "world")) == 6
