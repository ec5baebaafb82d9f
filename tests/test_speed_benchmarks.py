"""Smoke runs of the speed benchmarks on tiny sizes: they run, report what they claim, and clean up after
themselves. Their figures are measured by hand (benchmarks/README.md), never asserted here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import their sibling search.py
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_exact_search_finds_the_exact_top_k(tmp_path: Path, capsys) -> None:
    out = tmp_path / "exact.json"
    report = load("exact_search").main(
        ["--n", "20000", "--dim", "64", "--queries", "64", "--rounds", "1", "--single", "3", "--out", str(out)]
    )
    rows = {row["engine"]: row for row in report["rows"]}
    assert set(rows) == {"gemm fp32 (bound)", "gemm bf16 (bound)", "faiss Flat fp32", "GemmSearch fp32",
                         "GemmSearch bf16"}
    assert all(row["recall"] == 1.0 for name, row in rows.items() if not name.endswith("(bound)"))
    assert all(row["seconds"] > 0 and row["of_bound"] > 0 for row in rows.values())
    assert json.loads(out.read_text())["n"] == 20000
    assert "GemmSearch bf16" in capsys.readouterr().out


def test_ingest_memory_indexes_every_file_and_reports_the_peak(tmp_path: Path, capsys) -> None:
    result = load("ingest").main(["memory", "--files", "24", "--workers", "1", "--workdir", str(tmp_path)])
    assert result["indexed"] == 24
    assert result["peak_rss_mb"] >= result["model_rss_mb"] > 0
    assert "ingest costs" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # generated files and the collection were removed


def test_cpu_towers_compares_the_ways_of_running_a_tower(capsys) -> None:
    contestants = "fp32,bf16,bf16+frozen,bf16+bmm-attn,bf16+every-row"
    report = load("cpu_towers").main(["--tiny", "--rounds", "1", "--contestants", contestants])
    rows = {row["contestant"]: row for row in report["rows"]}
    assert set(rows) == {"fp32", "bf16", "bf16+frozen", "bf16+bmm-attn", "bf16+every-row"}
    assert all(row["items_per_s"] > 0 and row["cos_vs_fp32"] > 0.99 for row in rows.values())
    assert all(row["of_gap"] < 0.1 for row in rows.values())  # each input's vector, not a neighbour's
    assert "bf16+frozen" in capsys.readouterr().out


def test_cpu_features_measures_each_choice_against_its_alternative(tmp_path: Path, capsys) -> None:
    out = tmp_path / "features.json"
    report = load("cpu_features").main(["--quick", "--threads", "1", "--out", str(out)])
    rows = {row["what"].split(",")[0]: row for row in report["rows"]}
    assert set(rows) == {"matrix product", "training step", "FAISS flat", "IVF256 training on 20"}
    assert all(row["a_value"] > 0 and row["b_value"] > 0 and row["b_gain"] > 0 for row in rows.values())
    assert json.loads(out.read_text())["rows"] == report["rows"]
    assert "after `import indexes`" in capsys.readouterr().out


def test_gpu_benchmark_says_plainly_when_there_is_no_gpu(monkeypatch) -> None:
    import pytest
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        load("gpu").main(["--skip", "search"])


def test_encode_times_every_contestant_on_a_published_format_checkpoint(capsys) -> None:
    fixtures = Path(__file__).resolve().parent / "fixtures" / "parity"
    rows = load("encode").main(["--checkpoints", str(fixtures), "--modalities", "image", "--rounds", "1"])
    (row,) = rows
    assert row["modality"] == "image" and row["ours_fp32"] > 0 and row["ours_bf16"] > 0
    assert row["cos_bf16_vs_fp32"] > 0.99 and row["gemm_bf16_gflops"] > 0
    captured = capsys.readouterr()
    assert '"round": 1' in captured.err  # progress survives a run stopped at a time limit
    assert "ours fp32" in captured.out


def test_encode_takes_speed_ratios_within_each_round() -> None:
    encode = load("encode")
    ratios = encode._round_ratios({"ours_bf16": [1.0, 0.5, 2.0], "ref_fp32": [4.0, 2.5, 6.0]})
    assert ratios["ours_bf16/ref_fp32"] == [3.0, 4.0, 5.0]  # 4/1, 2.5/0.5, 6/2: round by round, sorted
    assert "ours_compiled/ref_fp32" not in ratios  # a contestant that did not run gives no ratio


def test_the_limit_times_the_same_product_every_way_it_runs_it() -> None:
    import torch

    ways = load("encode")._linear_products(64, 32, 48, torch.bfloat16)
    assert len(ways) == (2 if torch.backends.mkldnn.is_available() else 1)  # F.linear, and oneDNN pre-packed
    first = ways[0]()
    assert first.shape == (64, 48)
    for way in ways[1:]:  # oneDNN pre-packed, where this build has it: the same product (bf16 rounding aside)
        torch.testing.assert_close(way().float(), first.float(), rtol=2e-2, atol=5e-2)


def test_attention_benchmark_compares_kernels_against_float32(capsys) -> None:
    rows = load("attention").main(["--shapes", "image", "--tokens", "17", "--rounds", "1", "--threads", "1"])
    by_name = {row["contestant"]: row for row in rows}
    assert {"sdpa", "products", "bmm", "products alone"} <= set(by_name)
    assert all(row["gflops"] > 0 for row in rows)
    assert by_name["sdpa"]["max_abs_diff"] < 2e-2  # bf16 attention against float32
    assert by_name["products"]["max_abs_diff"] < 5e-2  # its scores and softmax rounded to bf16 too
    assert "sdpa" in capsys.readouterr().out


def test_text_tower_benchmark_compares_each_saving_with_the_way_before(capsys) -> None:
    rows = load("text_tower").main(["--batch", "8", "--rounds", "1", "--layers", "1", "--threads", "1"])
    assert [row["workload"] for row in rows] == ["8 captions", "1 query", "32 mixed texts"]
    assert all(row["before_per_s"] > 0 and row["after_per_s"] > 0 for row in rows)
    assert all(row["max_abs_diff"] < 1e-5 for row in rows)  # the same vectors, before and after
    assert "shortest first" in capsys.readouterr().out


def test_load_benchmark_times_each_way_of_loading(tmp_path, capsys) -> None:
    fixtures = Path(__file__).resolve().parent / "fixtures" / "parity"
    for modality in ("image", "depth"):  # two checkpoints whose text towers share one shape
        (tmp_path / modality).symlink_to(fixtures / modality)
    rows = load("load").main(["--checkpoints", str(tmp_path), "--rounds", "1"])
    towers = {row["loaded"].split(" (")[0]: row["modalities"] for row in rows}
    assert towers == {"every tower": ["text", "depth", "image"], "text alone": ["text"],
                      "text + image": ["text", "image"]}
    assert all(row["seconds"] >= row["load_s"] > 0 and row["peak_rss_mb"] > 0 for row in rows)
    assert "text alone" in capsys.readouterr().out


def test_serve_benchmark_times_both_ways_on_a_demo_it_makes(tmp_path, capsys) -> None:
    result = load("serve").main(["--demo", str(tmp_path), "--scenes", "3", "--queries", "1"])
    out = capsys.readouterr().out
    assert (tmp_path / "collection" / "items.lance").exists() and "server ready in" in out
    for kind in ("text", "audio file"):
        assert result[kind]["command_s"] > 0 and result[kind]["serve_s"] > 0 and kind in out


def test_ingest_commits_benchmark_compares_the_commit_policies(tmp_path, capsys) -> None:
    result = load("ingest").main(["commits", "--files", "40", "--batch-size", "1", "--rounds", "1", "--workers", "0",
                                  "--workdir", str(tmp_path)])
    assert len(result) == 3 and "commit per batch" in capsys.readouterr().out
    assert result["commit per batch"]["fragments"] > result["commit per batch + compact"]["fragments"] == 1


def test_collection_search_benchmark_times_both_ways(capsys) -> None:
    result = load("collection_search").main(["--rows", "3000", "--dim", "16", "--queries", "2"])
    assert set(result) == {"every search from scratch", "held", "under one folder, a new one each query",
                           "under the same folder again", "under 40 folders"}
    assert "ratio" in capsys.readouterr().out and all(ms > 0 for ms in result.values())


def test_the_bindworld_benchmark_regenerates_only_the_world_it_made(tmp_path: Path, monkeypatch) -> None:
    from bindsearch.world import make_world

    bindworld = load("bindworld")
    made = []

    def counted(directory, n, seed, *args, **kwargs):
        made.append((n, seed))
        return make_world(directory, n, seed, *args, **kwargs)

    monkeypatch.setattr(bindworld, "make_world", counted)
    bindworld.ensure_world(tmp_path / "ours", 6, 1, 1)
    bindworld.ensure_world(tmp_path / "ours", 6, 1, 1)  # the same: read as it is
    bindworld.ensure_world(tmp_path / "ours", 8, 2, 1)  # another size and seed: made again
    assert made == [(6, 1), (8, 2)]
    make_world(tmp_path / "users", 6, 5, {"train": 0.0, "val": 0.0, "test": 1.0})  # a user's, all test too
    before = (tmp_path / "users" / "scenes.csv").read_text()
    bindworld.ensure_world(tmp_path / "users", 8, 2, 1)
    assert made == [(6, 1), (8, 2)] and (tmp_path / "users" / "scenes.csv").read_text() == before
    (tmp_path / "users" / "world.json").unlink()  # as a user's world make, interrupted: before, "a None world"
    with pytest.raises(SystemExit, match="holds an unfinished world .* world make --overwrite"):
        bindworld.ensure_world(tmp_path / "users", 8, 2, 1)


def test_long_audio_benchmark_reads_each_route_by_crop_and_whole(capsys) -> None:
    rows = load("long_audio").main(["--minutes", "0.75", "--formats", "wav,webm"])  # 45 s: over four crops
    assert [row["format"] for row in rows] == ["wav", "webm"]
    assert all(row["apart"] < 1e-3 and row["crops"]["peak_mb"] > 0 for row in rows)
    assert "PyAV, two passes" in capsys.readouterr().out


def test_decode_threads_benchmark_times_both_ways_idle_and_loaded(capsys) -> None:
    rows = load("decode_threads").main(["--files", "4", "--rounds", "1"])["rows"]
    assert [(row["load"], row["files"]) for row in rows] == [
        (load, files) for load in ("idle", "one busy process")
        for files in ("4 1 s sounds", "4 640x480 photos", "2 12 MP photos")]
    assert all(row["one_thread_s"] > 0 and row["default_s"] > 0 for row in rows)
    assert "| one busy process | 4 1 s sounds |" in capsys.readouterr().out
