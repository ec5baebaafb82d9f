"""Linears pre-packed for oneDNN (bindsearch/models/packed.py): nn.Linear's results row by row, its state_dict, and
chosen only where that was measured to pay."""

from __future__ import annotations

import copy
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from bindsearch import load_model
from bindsearch.models import packed
from bindsearch.models.packed import PackedLinear, pack_linears, packing_pays, unpack_linears

pytestmark = pytest.mark.skipif(not packed._onednn(), reason="this torch has no oneDNN packed linear")


def _count(model: nn.Module) -> int:
    return sum(isinstance(m, PackedLinear) for m in model.modules())


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_a_packed_linear_computes_what_nn_linear_does_row_by_row(dtype, tol):
    torch.manual_seed(0)
    linear = nn.Linear(96, 160).to(dtype).requires_grad_(False)
    layer = PackedLinear(linear)
    assert layer.weight.is_mkldnn and "packed" in repr(layer)
    x = torch.randn(2, 37, 96, dtype=dtype)
    got = layer(x)
    assert got.shape == (2, 37, 160) and got.dtype == dtype
    torch.testing.assert_close(got.float(), linear(x).float(), rtol=tol, atol=tol)
    for n in (1, 2, 5, 37):  # a row's bits do not depend on the rows batched with it
        assert torch.equal(layer(x[1, :n])[-1], got[1, n - 1])
    assert torch.equal(layer(x.transpose(0, 1)).transpose(0, 1), got)  # nor on the input's layout
    assert layer(x[:0]).shape == (0, 37, 160)


def test_its_state_dict_is_an_nn_linears_and_loads_back():
    torch.manual_seed(0)
    linear = nn.Linear(8, 4)
    state = PackedLinear(linear).state_dict()
    assert set(state) == {"weight", "bias"} and not state["weight"].is_mkldnn
    assert torch.equal(state["weight"], linear.weight) and torch.equal(state["bias"], linear.bias)
    plain = nn.Linear(8, 4)
    plain.load_state_dict(state)
    fresh = PackedLinear(nn.Linear(8, 4))
    fresh.load_state_dict(linear.state_dict())  # packed again from the plain weights
    x = torch.randn(3, 8)
    assert fresh.weight.is_mkldnn and torch.equal(fresh(x), PackedLinear(linear)(x))
    torch.testing.assert_close(plain(x), linear(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        fresh.load_state_dict(nn.Linear(9, 4).state_dict())
    assert fresh.load_state_dict({}, strict=False).missing_keys == ["weight", "bias"]
    with pytest.raises(RuntimeError, match="size mismatch for bias"):
        fresh.load_state_dict({"weight": linear.weight, "bias": torch.zeros(5)})
    no_bias = PackedLinear(nn.Linear(8, 4, bias=False))
    assert set(no_bias.state_dict()) == {"weight"} and no_bias(x).shape == (3, 4)
    with pytest.raises(RuntimeError, match='Unexpected key.*"bias"'):
        no_bias.load_state_dict(linear.state_dict())


def test_copied_or_pickled_it_is_packed_again():
    torch.manual_seed(0)
    layer = PackedLinear(nn.Linear(8, 4))
    x = torch.randn(3, 8)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert twin.weight.is_mkldnn and torch.equal(twin(x), layer(x))


def test_it_refuses_to_train_and_follows_autocast_and_other_dtypes_as_nn_linear_does():
    torch.manual_seed(0)
    linear = nn.Linear(8, 4).requires_grad_(False)
    layer = PackedLinear(linear)
    x = torch.randn(3, 8)
    with pytest.raises(RuntimeError, match="packed for inference.*unpack_linears"):
        layer(x.requires_grad_())
    with torch.no_grad():
        assert layer(x).shape == (3, 4)  # no gradient asked for
    with torch.autocast("cpu", dtype=torch.bfloat16):  # F.linear casts, as for nn.Linear
        assert layer(x.detach()).dtype == linear(x.detach()).dtype == torch.bfloat16
    with pytest.raises(RuntimeError, match="same dtype"):  # torch's own words, not oneDNN's
        layer(x.detach().double())


def test_cast_or_moved_it_packs_again_or_runs_plain():
    torch.manual_seed(0)
    linear = nn.Linear(8, 4).requires_grad_(False)
    layer = PackedLinear(linear)
    x = torch.randn(3, 8)
    layer.to(torch.bfloat16)
    assert layer.weight.is_mkldnn and layer.weight.dtype == torch.bfloat16 and layer.bias.dtype == torch.bfloat16
    torch.testing.assert_close(layer(x.bfloat16()).float(), linear(x), rtol=2e-2, atol=2e-2)
    layer.half()  # not a format oneDNN packs on the CPU: a plain weight, through F.linear
    assert not layer.weight.is_mkldnn and layer.weight.dtype == torch.float16
    torch.testing.assert_close(layer(x.half()).float(), linear(x), rtol=1e-2, atol=1e-2)
    layer.float()
    assert layer.weight.is_mkldnn and layer.weight.dtype == torch.float32


def test_packing_a_model_keeps_its_weights_and_unpacking_gives_nn_linears_back(monkeypatch):
    monkeypatch.setattr(packed, "packing_pays", lambda device, dtype: False)
    model = load_model("random:tiny", device="cpu")
    assert _count(model) == 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = model.tokenize(["a dog", "rain on a roof"])
    want = model.embed("text", x)
    linears = sum(type(m) is nn.Linear for m in model.modules())
    assert pack_linears(model) == linears > 0 and _count(model) == linears
    state = model.state_dict()
    assert state.keys() == before.keys() and all(torch.equal(state[k], v) for k, v in before.items())
    torch.testing.assert_close(model.embed("text", x), want, rtol=0, atol=1e-6)
    assert unpack_linears(model) == linears and _count(model) == 0
    assert all(not p.requires_grad for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(model.embed("text", x), want)


@pytest.mark.parametrize("pays", [False, True])
def test_load_model_packs_where_it_pays_and_compile_towers_unpacks(pays, monkeypatch):
    monkeypatch.setattr(packed, "packing_pays", lambda device, dtype: pays)
    model = load_model("random:tiny", device="cpu")
    assert (_count(model) > 0) is pays
    model.compile_towers(["image"])  # Inductor packs for itself; it is handed nn.Linear
    assert _count(model) == 0


def test_a_packed_float32_model_lets_go_of_its_checkpoints_memory_map(monkeypatch, tmp_path):
    """The packed weights are copies: no tensor left may keep the mapped file, or it sits in memory twice."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps to read the process's mappings from")
    monkeypatch.setattr(packed, "packing_pays", lambda device, dtype: True)
    checkpoint = shutil.copytree(Path(__file__).parent / "fixtures" / "parity" / "image", tmp_path / "image")
    model = load_model(str(checkpoint), device="cpu")
    assert _count(model) > 0
    assert str(checkpoint / "model.safetensors") not in maps.read_text()


def test_packing_is_chosen_where_it_was_measured_to_pay(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(packed.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: True)
    monkeypatch.setattr(packed, "cpu_vendor", lambda: "AuthenticAMD")
    monkeypatch.setattr(packed, "cpu_has_avx512", lambda: True)
    assert packing_pays(cpu, torch.float32) and packing_pays(cpu, torch.bfloat16)
    monkeypatch.setenv("BINDSEARCH_PACKED_LINEARS", "0")  # the way out
    assert not packing_pays(cpu, torch.float32) and not packing_pays(cpu, torch.bfloat16)
    monkeypatch.delenv("BINDSEARCH_PACKED_LINEARS")
    monkeypatch.setattr(packed, "cpu_has_avx512", lambda: False)  # a Zen 3: not measured
    assert not packing_pays(cpu, torch.float32)
    monkeypatch.setattr(packed, "cpu_has_avx512", lambda: True)
    assert not packing_pays(gpu, torch.float32) and not packing_pays(cpu, torch.float16)
    monkeypatch.setattr(packed, "cpu_vendor", lambda: "GenuineIntel")  # MKL's float32 is as fast there
    assert not packing_pays(cpu, torch.float32) and packing_pays(cpu, torch.bfloat16)
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: False)  # bf16 emulated either way
    assert not packing_pays(cpu, torch.bfloat16)
    monkeypatch.setattr(packed.platform, "machine", lambda: "aarch64")  # not measured there
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: True)
    assert not packing_pays(cpu, torch.bfloat16)
