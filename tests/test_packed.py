"""Linears pre-packed for oneDNN (bindsearch/models/packed.py): nn.Linear's results row by row, its state_dict, and
chosen only where that was measured to pay."""

from __future__ import annotations

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
    no_bias = PackedLinear(nn.Linear(8, 4, bias=False))
    assert set(no_bias.state_dict()) == {"weight"} and no_bias(x).shape == (3, 4)


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


def test_packing_is_chosen_where_it_was_measured_to_pay(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(packed.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: True)
    monkeypatch.setattr(packed, "cpu_vendor", lambda: "AuthenticAMD")
    assert packing_pays(cpu, torch.float32) and packing_pays(cpu, torch.bfloat16)
    assert not packing_pays(gpu, torch.float32) and not packing_pays(cpu, torch.float16)
    monkeypatch.setattr(packed, "cpu_vendor", lambda: "GenuineIntel")  # MKL's float32 is as fast there
    assert not packing_pays(cpu, torch.float32) and packing_pays(cpu, torch.bfloat16)
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: False)  # bf16 emulated either way
    assert not packing_pays(cpu, torch.bfloat16)
    monkeypatch.setattr(packed.platform, "machine", lambda: "aarch64")  # not measured there
    monkeypatch.setattr(packed, "cpu_runs_bf16", lambda: True)
    assert not packing_pays(cpu, torch.bfloat16)
