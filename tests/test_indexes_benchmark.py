"""Smoke run of benchmarks/search.py on tiny sizes: every engine and kind runs, and exact search is exact."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_exact_top_k_is_a_brute_force_sort() -> None:
    bench = load_benchmark()
    rng = np.random.default_rng(0)
    vectors, queries = bench.unit_vectors(120_000, 8, rng, None), bench.unit_vectors(5, 8, rng, None)
    want = np.argsort(-(queries @ vectors.T), axis=1)[:, :7]
    np.testing.assert_array_equal(bench.exact_top_k(vectors, queries, 7), want)  # spans three blocks


def test_quick_run_prints_a_table_and_writes_json(tmp_path: Path, capsys) -> None:
    bench = load_benchmark()
    out = tmp_path / "search.json"
    rows = bench.main(
        [
            "--quick",
            "--sizes",
            "1000",
            "--dim",
            "32",
            "--queries",
            "20",
            "--repeat",
            "1",
            "--data",
            "clustered",
            "--workdir",
            str(tmp_path),
            "--out",
            str(out),
        ]
    )
    engines = {(row.engine, row.index.split("(")[0].split(",")[0].strip()) for row in rows}
    assert engines == {
        ("faiss", "Flat"),
        ("faiss", "IVF16"),
        ("faiss", "HNSW32"),
        ("lancedb", "no index"),
        ("lancedb", "IVF_PQ"),
        ("lancedb", "IVF_HNSW_SQ"),
    }
    assert all(row.recall == 1.0 for row in rows if row.params == "exact")
    assert all(0.0 <= row.recall <= 1.0 and row.qps > 0 for row in rows)
    report = json.loads(out.read_text())
    assert len(report["rows"]) == len(rows) and report["rows"][0]["data"] == "clustered"
    printed = capsys.readouterr().out
    assert "recall@10" in printed and "IVF_HNSW_SQ(1)" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["search.json"]  # the catalog was cleaned up
