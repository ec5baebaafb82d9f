"""Linear layers with their weights pre-packed for oneDNN: what Inductor's freezing does, without compiling.

On the CPU `F.linear` multiplies float32 through the BLAS torch was built with (MKL), and bfloat16 through oneDNN,
which lays the weight out in its own blocks again on every call. Packing each weight once, at load, skips that,
and on AMD CPUs moves float32 off MKL's kernels. On a Zen 5 EPYC with 2 threads the ViT-L/14 linear shapes ran at
about 520 GFLOP/s packed against 233 through `F.linear` in float32, and 1,100 against 1,000 in bfloat16
(`benchmarks/cpu_towers.py` times whole towers both ways).

`load_model` packs where that was measured to pay (`packing_pays`): bfloat16 on CPUs with bf16 matrix units, and
float32 on AMD CPUs with AVX-512. `BINDSEARCH_PACKED_LINEARS=0` turns it off. Each row's result does not depend on
the other rows of the batch, as with `F.linear`.

A packed layer is for inference: its weight is an opaque tensor, not a parameter, so `parameters()` leaves it out,
and a forward pass that would need its gradient is refused. Its state_dict is an `nn.Linear`'s, and copying or
pickling goes through the plain weight. `unpack_linears(model)` gives the `nn.Linear`s back, for training or for
`torch.compile` (`compile_towers` does it itself: Inductor packs for itself). An input of another dtype than the
weight, or under autocast, runs through `F.linear` as `nn.Linear` would.
"""

from __future__ import annotations

import functools
import os
import platform

import torch
from torch import nn

from indexes.cpu import cpu_has_avx512, cpu_runs_bf16, cpu_vendor

__all__ = ["PackedLinear", "pack_linears", "packing_pays", "unpack_linears"]


@functools.cache
def _onednn() -> bool:
    """Whether this torch has oneDNN's packed linear (x86 and Arm builds do)."""
    try:
        weight = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2))
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2), weight, None, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return torch.backends.mkldnn.is_available()


def packing_pays(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether packed linears are faster than `F.linear` for this device and dtype, as measured; never where
    `BINDSEARCH_PACKED_LINEARS=0`."""
    if os.environ.get("BINDSEARCH_PACKED_LINEARS", "").strip() == "0":
        return False
    if device.type != "cpu" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if dtype == torch.bfloat16:
        wins = cpu_runs_bf16() is True  # without the units oneDNN emulates bf16 either way
    elif dtype == torch.float32:  # measured on a Zen 5; MKL's own float32 kernels serve Intel CPUs
        wins = cpu_vendor() == "AuthenticAMD" and cpu_has_avx512()
    else:
        wins = False
    return wins and _onednn()


def _packable(weight: torch.Tensor) -> bool:
    return weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16) and _onednn()


class PackedLinear(nn.Module):
    """An inference-only `nn.Linear` whose weight is packed for oneDNN; its state_dict is an `nn.Linear`'s.

    The packed weight is an opaque tensor, not a parameter. Moved to where it cannot be packed (another dtype, a
    GPU), the layer keeps a plain weight and runs `F.linear`.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The bias copied: the weight's packing copies it, and a bias viewing a checkpoint's memory map would keep
        # the whole map, every packed weight's pages included, in memory.
        self._set(linear.weight.detach(), None if linear.bias is None else linear.bias.detach().clone())

    def _set(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous()) if _packable(weight) else weight
        self.bias = bias

    def dense_weight(self) -> torch.Tensor:
        return self.weight.to_dense() if self.weight.is_mkldnn else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("this model's linear layers are packed for inference and have no gradient: call "
                               "bindsearch.models.packed.unpack_linears(model) before training it")
        if self.weight.is_mkldnn and x.dtype == self.weight.dtype and not torch.is_autocast_enabled("cpu"):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return nn.functional.linear(x, self.dense_weight(), self.bias)

    def unpacked(self) -> nn.Linear:
        weight = self.dense_weight()
        with torch.device("meta"):
            linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        linear.weight = nn.Parameter(weight, requires_grad=False)
        if self.bias is not None:
            linear.bias = nn.Parameter(self.bias, requires_grad=False)
        return linear.train(self.training)

    def __getstate__(self) -> dict:  # pickle and copy.deepcopy: the plain weight (an opaque one has no storage)
        state = self.__dict__.copy()
        state["weight"] = self.dense_weight()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._set(self.weight, self.bias)

    def _apply(self, fn, recurse: bool = True):  # .to(), .float(), .cuda(): on the dense weight, packed again
        self._set(fn(self.dense_weight()), None if self.bias is None else fn(self.bias))
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        destination[prefix + "weight"] = self.dense_weight()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias is not None:
            shapes["bias"] = (self.out_features,)
        found = {name: state_dict[prefix + name] for name in shapes if prefix + name in state_dict}
        missing_keys.extend(prefix + name for name in shapes if name not in found)
        if self.bias is None and prefix + "bias" in state_dict:
            unexpected_keys.append(prefix + "bias")
        wrong = [name for name, value in found.items() if tuple(value.shape) != shapes[name]]
        for name in wrong:
            error_msgs.append(f"size mismatch for {prefix}{name}: copying a param with shape "
                              f"{tuple(found[name].shape)}, the shape in current model is {shapes[name]}.")
        if wrong:
            return
        current = self.dense_weight()  # the layer keeps its own device and dtype, as nn.Linear's copy_ does
        weight = found["weight"].to(current.device, current.dtype) if "weight" in found else current
        bias = self.bias if "bias" not in found else found["bias"].to(self.bias.device, self.bias.dtype)
        self._set(weight, bias)

    def extra_repr(self) -> str:
        packed = "packed" if self.weight.is_mkldnn else "not packed"
        return f"in_features={self.in_features}, out_features={self.out_features}, {packed}"


def pack_linears(module: nn.Module) -> int:
    """Replace every `nn.Linear` in `module` by a `PackedLinear`; returns how many were replaced."""
    return _replace(module, nn.Linear, PackedLinear)


def unpack_linears(module: nn.Module) -> int:
    """Give every `PackedLinear` in `module` back as an `nn.Linear`; returns how many were replaced."""
    return _replace(module, PackedLinear, PackedLinear.unpacked)


def _replace(module: nn.Module, kind: type, make) -> int:
    count = 0
    for name, child in module.named_children():
        if type(child) is kind:  # exactly: subclasses (LoRA layers in training) keep their own forward
            setattr(module, name, make(child))
            count += 1
        else:
            count += _replace(child, kind, make)
    return count
