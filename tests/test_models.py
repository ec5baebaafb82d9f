"""Model loading: specs, the Hugging Face cache, LoRA merging, several checkpoints at once, dtypes."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from bindsearch import load_model
from bindsearch.models import ModelLoadError, UnsupportedModalityError
from bindsearch.models.loading import merge_lora, read_state_dict

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


def test_tiny_model_encodes_every_modality_to_unit_vectors(tiny_model, media_files):
    assert set(tiny_model.modalities) == {"text", "image", "infrared", "depth", "video", "audio"}
    for modality, path in media_files.items():
        v = tiny_model.encode(modality, [path, path])
        assert v.shape == (2, tiny_model.dim) and v.dtype == torch.float32
        assert torch.allclose(v.norm(dim=-1), torch.ones(2), atol=1e-5)
        assert torch.equal(v[0], v[1])
    t = tiny_model.encode("text", ["a dog barking", "rain"])
    assert t.shape == (2, tiny_model.dim) and not torch.equal(t[0], t[1])


def test_unsupported_modality_names_what_the_model_can_do():
    model = load_model(str(FIXTURES / "image"), device="cpu")
    assert model.modalities == ("text", "image")
    with pytest.raises(UnsupportedModalityError, match="has no audio encoder.*encodes: text, image"):
        model.embed("audio", torch.zeros(1, 3, 28, 98))


def test_merge_lora_folds_adapters_into_base_weights():
    w0, a, b = torch.randn(6, 4), torch.randn(2, 4), torch.randn(6, 2)
    state = {
        "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.base_layer.weight": w0,
        "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.base_layer.bias": torch.zeros(6),
        "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.lora_A.default.weight": a,
        "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.lora_B.default.weight": b,
    }
    merged = merge_lora(state, r=2, alpha=16)
    assert set(merged) == {"vision_model.encoder.layers.0.self_attn.q_proj.weight",
                           "vision_model.encoder.layers.0.self_attn.q_proj.bias"}
    assert torch.allclose(merged["vision_model.encoder.layers.0.self_attn.q_proj.weight"], w0 + 8 * b @ a, atol=1e-5)


def test_the_lora_fixture_has_non_zero_adapters():
    # If merging were skipped, the LoRA fixture's embeddings would not match its golden (test_parity);
    # here: the adapters really are non-zero, so the check has teeth.
    state = read_state_dict(FIXTURES / "video_lora")
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)


def test_several_checkpoints_share_one_text_tower(tmp_path):
    # Give the depth checkpoint the image checkpoint's text tower: the frozen anchor is then identical.
    image_state = read_state_dict(FIXTURES / "image")
    depth_state = read_state_dict(FIXTURES / "depth")
    depth_state.update({k: v for k, v in image_state.items() if k.startswith(("text_model.", "text_projection."))})
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    shutil.copy(FIXTURES / "depth" / "config.json", depth_dir)
    save_file({k: v.contiguous() for k, v in depth_state.items()}, str(depth_dir / "model.safetensors"))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = load_model(f"{FIXTURES / 'image'},{depth_dir}", device="cpu")
    assert both.modalities == ("text", "image", "depth")
    single = load_model(str(FIXTURES / "depth"), device="cpu")
    x = torch.from_numpy(np.load(FIXTURES / "depth" / "golden.npz")["pixel_values"].astype(np.float32))
    assert torch.allclose(both.embed("depth", x), single.embed("depth", x), atol=1e-6)

    with pytest.warns(UserWarning, match="text tower of .* differs"):
        load_model([str(FIXTURES / "image"), str(FIXTURES / "depth")], device="cpu")


@pytest.mark.parametrize("first, others", [  # the first checkpoint as bin, sharded safetensors, bin with LoRA
    ("depth", ["audio", "image"]), ("audio", ["image", "depth"]), ("video_lora", ["infrared"])])
def test_only_the_towers_asked_for_are_read(first, others, monkeypatch):
    """`modalities` reads the text tower from the first checkpoint and the towers asked for, nothing else; the
    vectors are the reference's, and the model keeps the whole spec's identity (so it opens its collection)."""
    from bindsearch.models import loading

    spec = ",".join(str(FIXTURES / m) for m in (first, *others))
    golden = {m: np.load(FIXTURES / m / "golden.npz") for m in (first, *others)}
    read: list[str] = []
    real_load_file = loading._load_file
    monkeypatch.setattr(loading, "_load_file", lambda *a: read.extend(state := real_load_file(*a)) or state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures' text towers differ (random weights); the first one's is used
        full = load_model(spec, device="cpu")
        read.clear()
        text = load_model(spec, device="cpu", modalities=["text"])
        assert read and all(key.startswith(("text_model.", "text_projection.")) for key in read)
        one = load_model(spec, device="cpu", modalities=[others[0]])
    assert text.modalities == ("text",) and one.modalities == ("text", others[0])
    assert {(m.spec, m.checkpoint) for m in (text, one)} == {(full.spec, full.checkpoint)}
    sizes = [sum(p.numel() for p in m.parameters()) for m in (text, one, full)]
    assert sizes == sorted(set(sizes))  # text alone < text and one tower < every tower
    ids = torch.from_numpy(golden[first]["input_ids"])
    for model in (text, one, full):
        torch.testing.assert_close(model.embed("text", ids), torch.from_numpy(golden[first]["text_embeds"]),
                                   rtol=0, atol=1e-4)
    x = torch.from_numpy(golden[others[0]]["pixel_values"].astype(np.float32))
    torch.testing.assert_close(one.embed(others[0], x), torch.from_numpy(golden[others[0]]["modality_embeds"]),
                               rtol=0, atol=1e-4)
    absent = ({"image", "audio", "depth", "infrared", "video"} - {"video" if first == "video_lora" else first,
                                                                   *others}).pop()
    with pytest.raises(UnsupportedModalityError, match=f"has no {absent} encoder .*it encodes: text, "):
        load_model(spec, device="cpu", modalities=[absent])


def test_checkpoints_of_different_spaces_are_refused(tmp_path):
    cfg = json.loads((FIXTURES / "depth" / "config.json").read_text())
    cfg["projection_dim"] = 16
    other = tmp_path / "other"
    shutil.copytree(FIXTURES / "depth", other)
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="cannot share a space"):
        load_model(f"{FIXTURES / 'image'},{other}", device="cpu")


@pytest.mark.filterwarnings("ignore:the text tower of")  # the fixtures' random text weights differ too
def test_text_towers_that_differ_are_refused_naming_the_field(tmp_path):
    cfg = json.loads((FIXTURES / "depth" / "config.json").read_text())
    cfg["text_config"]["hidden_act"] = "gelu" if cfg["text_config"].get("hidden_act") != "gelu" else "quick_gelu"
    other = tmp_path / "other"
    shutil.copytree(FIXTURES / "depth", other)
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"text tower is not the image one's \(text\.[\w.]+: (quick_)?gelu, not "):
        load_model(f"{FIXTURES / 'image'},{other}", device="cpu")


@pytest.mark.parametrize("damage, says", [
    ("empty bin", r"pytorch_model.bin is empty \(a download cut short\?\); download it again"),
    ("index not JSON", r"model.safetensors.index.json is not a shard index \(JSONDecodeError"),
    ("index without weight_map", r"model.safetensors.index.json is not a shard index \(KeyError"),
    ("config a list", r"config.json: a JSON object was expected, not list"),
    ("config null", r"config.json: a JSON object was expected, not NoneType"),
    ("shapes unlike config", r"does not match its config.json: size mismatch for text_projection.weight"),
    ("NaN weight", r"pytorch_model.bin: tensor text_model\.[\w.]+ holds NaN or infinity, .*download it again$"),
    ("infinite weight", r"pytorch_model.bin: tensor text_model\.[\w.]+ holds NaN or infinity"),
    ("integer weight", r"model.safetensors: tensor text_model\.[\w.]+ is int64, not floating point"),
    ("no vision_config", r"config.json: vision_config is missing \(the tower's shape"),
    ("no text_config", r"config.json: text_config is missing"),
    ("projection_dim not a number", r"config.json: projection_dim must be a whole number, not 'abc'$"),
    ("hidden_size not a number", r"config.json: vision_config.hidden_size must be a whole number, not '64px'$"),
    ("bin cut short", r"pytorch_model.bin could not be read as weights \(RuntimeError: [^.]*central directory\); "
                      r"download it again$"),
])
def test_a_broken_checkpoint_is_one_line_naming_its_file(tmp_path, damage, says, run_cli):
    """An interrupted download or a hand-edited config: one error line naming the file, never a traceback."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "depth", ckpt)
    weights = next(p for p in ckpt.iterdir() if p.suffix in (".bin", ".safetensors"))
    if damage == "empty bin":
        weights.unlink()
        (ckpt / "pytorch_model.bin").write_bytes(b"")
    elif damage.startswith("index"):
        shard = ckpt / "model-00001-of-00001.safetensors"
        save_file({k: v.contiguous() for k, v in read_state_dict(ckpt).items()}, shard)
        weights.unlink()
        (ckpt / "model.safetensors.index.json").write_text("{weight_map: 1" if damage == "index not JSON" else "{}")
    elif damage.startswith("config"):
        (ckpt / "config.json").write_text("[1, 2]" if damage == "config a list" else "null")
    elif damage.endswith("weight"):
        state = read_state_dict(ckpt)
        # In the text tower, the one tower `encode text` reads.
        key = next(k for k, v in state.items() if k.startswith("text_model.") and v.is_floating_point())
        if damage == "integer weight":
            state[key] = state[key].to(torch.int64)
            weights.unlink()
            save_file({k: v.contiguous() for k, v in state.items()}, ckpt / "model.safetensors")
        else:
            state[key].view(-1)[0] = float("nan" if damage == "NaN weight" else "inf")
            torch.save(state, weights)
    elif damage == "bin cut short":
        weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    elif damage.startswith(("no ", "projection_dim", "hidden_size")):
        cfg = json.loads((ckpt / "config.json").read_text())
        if damage.startswith("no "):
            del cfg[damage.removeprefix("no ")]
        elif damage.startswith("projection_dim"):
            cfg["projection_dim"] = "abc"
        else:
            cfg["vision_config"]["hidden_size"] = "64px"
        (ckpt / "config.json").write_text(json.dumps(cfg))
    else:
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg["projection_dim"] = cfg["projection_dim"] // 2
        (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=says):
        load_model(str(ckpt), device="cpu")
    code, _, err = run_cli("encode", "text", "a dog", "--model", ckpt)
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1


def test_float16_weights_whose_sum_overflows_are_not_taken_for_infinite(tmp_path):
    """The check sums each tensor first: a float16 sum past 65504 is inf though every weight is finite."""
    from bindsearch.models.loading import _check_weights

    weights = {"text_model.w": torch.full((1000,), 100.0, dtype=torch.float16), "x.position_ids": torch.arange(3)}
    _check_weights(tmp_path / "model.safetensors", weights)
    weights["text_model.w"][-1] = float("inf")
    with pytest.raises(ModelLoadError, match="tensor text_model.w holds NaN or infinity"):
        _check_weights(tmp_path / "model.safetensors", weights)


def test_a_path_object_and_a_missing_relative_folder(tmp_path):
    assert load_model(FIXTURES / "image", device="cpu").modalities == ("text", "image")
    for spec in ("./nope", "../nope"):  # a folder, not a Hugging Face repo id
        with pytest.raises(ModelLoadError, match=f"^{re.escape(spec)} is neither a checkpoint directory"):
            load_model(spec)


def test_embed_refuses_inputs_it_would_answer_wrongly(tiny_model):  # and lets NaN through, row by row
    size = tiny_model.preprocess["image"].image_size
    x = torch.rand(2, 3, size, size)
    assert tiny_model.embed("image", x[:0]).shape == (0, tiny_model.dim)
    with pytest.raises(TypeError, match="takes a torch.Tensor, not numpy.ndarray"):
        tiny_model.embed("image", x.numpy())
    with pytest.raises(TypeError, match="takes preprocessed float pixels .* not torch.uint8"):
        tiny_model.embed("image", (x * 255).to(torch.uint8))
    x[1, 0, 0, 0] = float("nan")  # that row alone is not finite: the pipeline fails its file, not the batch
    rows = tiny_model.embed("image", x)
    assert torch.isfinite(rows[0]).all() and not torch.isfinite(rows[1]).all()
    ids = tiny_model.tokenize(["a dog"])
    with pytest.raises(ValueError, match="token ids must lie in 0..49407"):
        tiny_model.embed("text", ids + 50_000)
    with pytest.raises(ValueError, match=r"token ids must be \(batch, at most 77\), got \(1, 100\)"):
        tiny_model.embed("text", torch.zeros(1, 100, dtype=torch.long))
    with pytest.raises(TypeError, match="takes token ids"):
        tiny_model.embed("text", ids.float())


def _fake_hub_cache(home: Path, repo: str, source: Path) -> None:
    snapshot = "0123456789abcdef0123456789abcdef01234567"
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(source, root / "snapshots" / snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(snapshot)


def test_alias_resolves_from_the_hugging_face_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path, "LanguageBind/LanguageBind_Depth", FIXTURES / "depth")
    model = load_model("languagebind:depth", device="cpu")
    assert model.modalities == ("text", "depth")


def test_the_default_model_and_loading_look_in_the_same_cache(tmp_path, monkeypatch):
    """With LanguageBind's five checkpoints cached (here under $XDG_CACHE_HOME, as huggingface_hub finds them),
    the default model is "languagebind" and loads from there offline; without them it is bindsearch-mini."""
    from bindsearch.models.specs import ALIASES, LANGUAGEBIND_ALL, default_model

    for name in ("HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_model() == "bindsearch-mini"
    fixtures = {"languagebind:video_ft": "video", "languagebind:audio_ft": "audio", "languagebind:depth": "depth",
                "languagebind:thermal": "infrared", "languagebind:image": "image"}
    for alias in LANGUAGEBIND_ALL:
        _fake_hub_cache(tmp_path / "huggingface", ALIASES[alias], FIXTURES / fixtures[alias])
    assert default_model() == "languagebind"
    assert load_model("languagebind:depth", device="cpu").modalities == ("text", "depth")
    depth = tmp_path / "huggingface" / "hub" / "models--LanguageBind--LanguageBind_Depth"
    (depth / "refs" / "main").unlink()  # a download pinned to a revision: loading offline cannot find it by main
    assert default_model() == "bindsearch-mini"


def test_missing_repo_offline_fails_with_one_actionable_line(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli("encode", "text", "hi", "--model", "languagebind:thermal")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "LanguageBind/LanguageBind_Thermal" in lines[0]
    assert "hf download LanguageBind/LanguageBind_Thermal" in lines[0]
    _fake_hub_cache(tmp_path, "LanguageBind/LanguageBind_Depth", FIXTURES / "depth")
    code, _, err = run_cli("encode", "text", "hi", "--model", "languagebind")  # five repos, one of them cached
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "4 checkpoints are not in the Hugging Face cache" in err and "hf download LanguageBind/LanguageBind_Depth" \
        not in err
    for repo in ("Video_FT", "Audio_FT", "Thermal", "Image"):  # every download named at once, not one at a time
        assert f"hf download LanguageBind/LanguageBind_{repo}" in err


def test_an_old_format_bin_loads_even_when_only_its_text_tower_is_read(tmp_path):
    """torch's pre-1.6 format cannot be memory-mapped: reading only the text tower falls back to a plain load."""
    old = tmp_path / "old"
    shutil.copytree(FIXTURES / "depth", old)
    state = read_state_dict(old)
    for name in ("model.safetensors", "pytorch_model.bin"):
        (old / name).unlink(missing_ok=True)
    torch.save(state, old / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures' text towers differ (random weights); the first one's is used
        model = load_model(f"{old},{FIXTURES / 'image'}", device="cpu", modalities=["image"])
    assert model.modalities == ("text", "image")


def test_a_broken_link_or_no_weights_in_the_hub_cache_says_download_again(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path, "LanguageBind/LanguageBind_Depth", FIXTURES / "depth")
    snapshot = next((tmp_path / "hub" / "models--LanguageBind--LanguageBind_Depth" / "snapshots").iterdir())
    weights = next(f for f in snapshot.iterdir() if f.suffix in (".bin", ".safetensors"))
    weights.unlink()
    weights.symlink_to(tmp_path / "blobs" / "gone")  # the blob it pointed to was deleted
    with pytest.raises(ModelLoadError, match=r"is a link to a file that is gone; the checkpoint is incomplete, "
                                             r"download it again: hf download LanguageBind/LanguageBind_Depth"):
        load_model("languagebind:depth", device="cpu")
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r"has no model.safetensors.*hf download LanguageBind/LanguageBind_Depth"):
        load_model("languagebind:depth", device="cpu")


def test_unknown_spec_and_pickles_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model alias"):
        load_model("languagebind:smell")
    bad = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "depth", bad)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"x": Payload()}, bad / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="could not be read as weights"):
        load_model(str(bad))


@pytest.mark.parametrize("by_products", [False, True])
def test_bfloat16_stays_close_to_float32(by_products, tiny_model, tmp_path, monkeypatch):
    """Either way bf16 attention runs (SDPA; two products and a bf16 softmax, as on CPUs with bf16 units but no
    AMX), on any CPU; and an item's vector does not depend on the items batched with it."""
    from closeness import assert_same_vectors
    from conftest import make_media

    from bindsearch.models import tower

    monkeypatch.setattr(tower, "attention_by_products", lambda x: by_products and x.dtype == torch.bfloat16)
    monkeypatch.setattr(tower, "_SCORES_BYTES", 1)  # one item per chunk: several chunks per batch
    files = [make_media(tmp_path / f"s{i}", seed=i) for i in range(3)]
    bf16 = load_model("random:tiny", device="cpu", dtype="bf16")
    for modality in ("image", "audio", "video"):
        a = tiny_model.encode(modality, [f[modality] for f in files])
        b = bf16.encode(modality, [f[modality] for f in files])
        assert b.dtype == torch.float32
        assert_same_vectors(b, a)
        assert torch.equal(bf16.encode(modality, [files[1][modality]])[0], b[1])


def test_bf16_attention_runs_as_products_only_on_x86_cpus_with_bf16_units_and_no_amx(cpu_probes):
    from bindsearch.models import tower

    x = torch.zeros(2, 3, 4, dtype=torch.bfloat16)
    for machine, units, amx, expected in (("x86_64", True, False, True), ("x86_64", True, True, False),
                                          ("x86_64", False, False, False), ("aarch64", True, False, False)):
        cpu_probes(machine, avx512_bf16=units, amx=amx)
        assert tower.attention_by_products(x) is expected
    cpu_probes("x86_64", avx512_bf16=True)
    assert tower.attention_by_products(x)
    assert not tower.attention_by_products(x.float()) and not tower.attention_by_products(x.to("meta"))


def test_compiled_bf16_towers_keep_sdpa_and_one_graph(monkeypatch):
    """The CPU probes behind the products choice cannot be traced: compiled, the choice is not made at all."""
    from torch._dynamo.utils import counters

    from bindsearch.models import tower

    # Where eager bf16 runs the products; untraceable, as torch.cpu's real probes are.
    monkeypatch.setattr(tower, "_products_beat_sdpa", torch._dynamo.disable(lambda: True))
    model = load_model("random:tiny", device="cpu", dtype="bf16").compile_towers(["image"], batch_size=2)
    counters.clear()
    model.embed("image", torch.randn(2, 3, *_input_shape(model.vision_models["image"].config)))
    assert not counters["graph_break"]


@pytest.mark.parametrize("units", [False, True])
def test_bfloat16_on_a_cpu_without_bf16_units_is_run_and_warned_of_in_one_line(units, cpu_probes, run_cli,
                                                                                media_files):
    cpu_probes("x86_64", avx512_bf16=units)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as a user's shell has it: the tests' configuration ignores this warning
        code, out, err = run_cli("encode", "image", media_files["image"], "--model", "random:tiny", "--dtype",
                                 "bfloat16", "--device", "cpu", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 1
    warned = [line for line in err.splitlines() if "bf16 matrix units" in line]
    if units:
        assert not warned
    else:  # the words alone, not Python's "file:line: UserWarning" and the source line under them
        assert warned == ["warning: this CPU has no bf16 matrix units (neither AVX512-BF16 nor AMX): bfloat16 is "
                          "emulated and runs about 4x slower than float32 here; leave the dtype at float32"]
        assert "UserWarning" not in err and "warnings.warn" not in err
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_model("random:tiny", device="cpu", dtype="float32")
    assert not [w for w in seen if "bf16" in str(w.message)]  # float32 never warns


def test_compiled_towers_give_the_eager_vectors_for_any_batch_length():
    """`compile_towers` pads short batches to its compiled size and splits long ones; vectors do not change."""
    from bindsearch.models.builtin import random_model, tiny_configs

    model = random_model([c for c in tiny_configs() if c.modality == "image"]).to(torch.bfloat16).eval()
    x = torch.randn(7, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    eager = model.embed("image", x)
    model.compile_towers(batch_size=4)
    for batch in (x, x[:3]):  # 7 = 4 + a short 3; 3 alone
        compiled = model.embed("image", batch)
        assert compiled.shape == (len(batch), model.dim)
        assert (compiled * eager[: len(batch)]).sum(-1).min() > 0.999
    with pytest.raises(ValueError, match="text tower stays eager"):
        model.compile_towers(["text"])


def test_the_last_block_computes_only_the_pooled_row(tiny_model):
    """Towers skip the last block's work on rows nobody reads; the pooled vectors are those of every row."""
    torch.manual_seed(0)
    shapes = []  # what each tower's last block gives: one (b, d) row per item, not (b, n, d)
    hooks = [m.encoder.layers[-1].register_forward_hook(lambda _, __, out: shapes.append(out.dim()))
             for m in (*tiny_model.vision_models.values(), tiny_model.text_model)]
    for modality in tiny_model.vision_models:
        tiny_model.embed(modality, torch.randn(2, 3, *_input_shape(tiny_model.vision_models[modality].config)))
    tiny_model.embed("text", tiny_model.tokenize(["a dog", "rain"]))
    for hook in hooks:
        hook.remove()
    assert shapes == [2] * (len(tiny_model.vision_models) + 1)
    for modality in ("image", "audio", "video"):
        vision = tiny_model.vision_models[modality]
        x = torch.randn(3, 3, *_input_shape(vision.config))
        with torch.inference_mode():
            tokens, t = vision.tokens(x)
            every_row = vision.post_layernorm(vision.encoder(vision.pre_layrnorm(tokens))[:, 0])
            every_row = every_row.view(-1, t, every_row.shape[-1]).mean(dim=1)
            torch.testing.assert_close(vision(x), every_row, rtol=0, atol=1e-5)

    # Text: the pooled end-of-text row alone in the last block, and no position after the batch's last one.
    text = tiny_model.text_model
    ids = tiny_model.tokenize(["a dog", "rain on a tin roof at night", "x"])  # end-of-text at three places
    with torch.inference_mode():
        x = text.embeddings.token_embedding(ids) + text.embeddings.position_embedding.weight[: ids.shape[1]]
        hidden = text.final_layer_norm(text.encoder(x, causal=True))
        every_row = hidden[torch.arange(len(ids)), ids.argmax(dim=-1)]
        torch.testing.assert_close(text(ids), every_row, rtol=0, atol=1e-5)


def _input_shape(cfg) -> tuple[int, ...]:
    """A tower's input after the channels: (frames,) for video, then the grid."""
    return ((cfg.num_frames,) if cfg.num_frames > 1 else ()) + tuple(cfg.input_size)


def test_texts_are_batched_shortest_first_and_come_back_in_order(tiny_model, monkeypatch):
    texts = ["a very long caption about a dog barking at the mailman all morning", "rain", "a cat", "x y z w",
             "the sound of waves on a pebble beach at dusk"]
    lengths: list[list[int]] = []  # end-of-text positions of each batch the tower saw
    real = type(tiny_model).encode_batch
    monkeypatch.setattr(type(tiny_model), "encode_batch",
                        lambda self, m, batch: lengths.append(batch.argmax(-1).tolist()) or real(self, m, batch))
    together = tiny_model.encode("text", texts, batch_size=2)  # three batches, each of similar lengths
    assert len(lengths) == 3 and sorted(sum(lengths, [])) == sum(lengths, [])  # shortest first, across batches
    monkeypatch.undo()
    for text, vector in zip(texts, together, strict=True):
        torch.testing.assert_close(vector, tiny_model.encode("text", [text])[0], rtol=0, atol=1e-5)
    assert tiny_model.encode("text", []).shape == (0, tiny_model.dim)


def test_weights_retrained_at_the_same_shapes_are_another_checkpoint_and_old_collections_still_open(tmp_path):
    from bindsearch import Collection

    original, retrained = tmp_path / "image", tmp_path / "retrained"
    for folder in (original, retrained):
        shutil.copytree(FIXTURES / "image", folder)
    state = {k: v.clone() for k, v in read_state_dict(original).items()}
    save_file(state, original / "model.safetensors")  # both written alike, so that their sizes agree
    before = load_model(str(original), device="cpu")
    name = max(state, key=lambda k: state[k].numel())  # a weight in the middle of the file, not the header
    state[name] += 0.01
    save_file(state, retrained / "model.safetensors")
    assert (retrained / "model.safetensors").stat().st_size == (original / "model.safetensors").stat().st_size
    after = load_model(str(retrained), device="cpu")
    assert after.checkpoint != before.checkpoint  # the sizes alone (the id before 0.2) could not tell them apart
    assert after.previous_checkpoints == before.previous_checkpoints
    # A collection made when the id was the sizes' opens with the same weights, and refuses others.
    col = Collection.open(tmp_path / "col", model=before)
    assert col.catalog.encoder.checkpoint == before.checkpoint
    from indexes import Catalog, EncoderInfo

    def made_by_0_1(name: str) -> Path:
        Catalog.open(tmp_path / name, EncoderInfo(str(original), before.previous_checkpoints[0], before.dim))
        return tmp_path / name

    after.spec = before.spec  # the same folder, weights retrained in place
    for opened in (lambda path: Collection.open(path, model=before),  # given the model
                   lambda path: Collection.open(path).encoder(()) and Collection.open(path)):  # loading its own
        old = made_by_0_1(f"old{id(opened)}")
        assert opened(old).catalog.encoder.checkpoint == before.checkpoint  # renamed to the id that reads weights
        assert Catalog.open(old).encoder.checkpoint == before.checkpoint  # for good
        with pytest.raises(ValueError, match="was built with"):  # so retrained weights no longer pass as them
            Collection.open(old, model=after)
    with pytest.raises(ValueError, match="was built with"):
        Collection.open(tmp_path / "col", model=after)
