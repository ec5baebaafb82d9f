"""Write the parity fixtures by importing and running the reference LanguageBind package.

Run by hand in the reference venv (see tests/parity/README.md), never in CI:

    /work/venvs/ref/bin/python tests/parity/make_fixtures.py
    /work/venvs/ref/bin/python tests/parity/make_fixtures.py --full --out /tmp/lb_full --variants image

Small mode writes, under tests/fixtures/parity/: one random-weight checkpoint per variant, saved by the
reference's own `save_pretrained`, with its `golden.npz`; `preprocess.npz` (the reference processors on
media_cases' files); `dsp.npz` (torchaudio fbank and resample). `--full` writes full-size ViT-L/14
checkpoints and goldens to `--out` instead (gigabytes: keep them out of the repository).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms._functional_tensor as _functional_tensor

# pytorchvideo imports a torchvision module that was renamed; alias it before `import languagebind`.
sys.modules["torchvision.transforms.functional_tensor"] = _functional_tensor

import languagebind  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import media_cases  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "parity"

CLASSES = {
    "image": (languagebind.LanguageBindImageConfig, languagebind.LanguageBindImage),
    "thermal": (languagebind.LanguageBindThermalConfig, languagebind.LanguageBindThermal),
    "depth": (languagebind.LanguageBindDepthConfig, languagebind.LanguageBindDepth),
    "audio": (languagebind.LanguageBindAudioConfig, languagebind.LanguageBindAudio),
    "video": (languagebind.LanguageBindVideoConfig, languagebind.LanguageBindVideo),
}

# Preprocessing constants of the published checkpoints' config.json files.
AUDIO_PREPROCESS = {
    "num_mel_bins": 112,
    "target_length": 1036,
    "audio_sample_rate": 16000,
    "audio_mean": -4.2677393,
    "audio_std": 4.5689974,
}

SMALL = {
    "text": dict(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=64,
        projection_dim=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=998,
        eos_token_id=999,
        pad_token_id=1,
    ),
    "vision": dict(
        hidden_size=64,
        intermediate_size=128,
        projection_dim=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=56,
        patch_size=14,
        lora_r=0,
        lora_alpha=16,
        lora_dropout=0.0,
    ),
    "projection_dim": 24,
    "audio_grid": {"num_mel_bins": 28, "target_length": 98},  # 2 x 7 patches of 14
    "batch": 2,
}

FULL = {
    "text": dict(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        projection_dim=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    ),
    "vision": dict(
        hidden_size=1024,
        intermediate_size=4096,
        projection_dim=768,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        lora_r=0,
        lora_alpha=16,
        lora_dropout=0.0,
    ),
    "projection_dim": 768,
    "audio_grid": {"num_mel_bins": 112, "target_length": 1036},
    "batch": 1,
}

VIDEO = {"add_time_attn": True, "num_frames": 8, "video_decode_backend": "decord"}

# kind: which reference classes; act: (text, vision) hidden_act; save: how save_pretrained is called.
VARIANTS = {
    "image": dict(kind="image", act=("gelu", "gelu"), vision={}, save="safetensors"),
    "infrared": dict(
        kind="thermal",
        act=("quick_gelu", "quick_gelu"),
        vision={"lora_r": 2, "lora_alpha": 16},
        save="safetensors",
    ),
    "depth": dict(kind="depth", act=("gelu", "quick_gelu"), vision={"max_depth": 10}, save="bin"),
    "audio": dict(
        kind="audio",
        act=("gelu", "gelu"),
        vision={"lora_r": 2, "lora_alpha": 8, **AUDIO_PREPROCESS},
        save="sharded-safetensors",
    ),
    "video": dict(kind="video", act=("gelu", "gelu"), vision=dict(VIDEO), save="safetensors"),
    "video_lora": dict(
        kind="video",
        act=("quick_gelu", "gelu"),
        vision={**VIDEO, "lora_r": 2, "lora_alpha": 16},
        save="bin",
    ),
    "video_vl_new": dict(
        kind="video",
        act=("gelu", "gelu"),
        vision={**VIDEO, "clip_type": "vl_new"},
        save="sharded-bin",
    ),
}
FULL_VARIANTS = {
    "image": dict(kind="image", act=("gelu", "gelu"), vision={}, save="safetensors"),
    "audio": dict(kind="audio", act=("gelu", "gelu"), vision=dict(AUDIO_PREPROCESS), save="safetensors"),
    "video": dict(kind="video", act=("gelu", "gelu"), vision=dict(VIDEO), save="safetensors"),
}


def save_npz(path: Path, **arrays) -> None:
    """np.savez_compressed with fixed zip timestamps, so unchanged goldens rewrite to identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def build_config(spec: dict, sizes: dict, logit_scale_init: float = 2.6592):
    config_class, _ = CLASSES[spec["kind"]]
    text = {**sizes["text"], "hidden_act": spec["act"][0]}
    vision = {**sizes["vision"], "hidden_act": spec["act"][1], **spec["vision"]}
    if spec["kind"] == "audio":
        vision.update(sizes["audio_grid"])
    return config_class(
        text_config=text,
        vision_config=vision,
        projection_dim=sizes["projection_dim"],
        logit_scale_init_value=logit_scale_init,
    )


def _normal(shape, std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * std


@torch.no_grad()
def randomise(model: nn.Module, seed: int, logit_scale: float) -> None:
    """Overwrite every parameter with seeded noise: LayerNorms, biases, embeddings and LoRA A and B too."""
    g = torch.Generator().manual_seed(seed)
    done: set[int] = set()
    lora_scale = model.config.vision_config.lora_alpha / max(model.config.vision_config.lora_r, 1)
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}"
            if isinstance(module, nn.LayerNorm):
                value = 1.0 + _normal(p.shape, 0.1, g) if name == "weight" else _normal(p.shape, 0.05, g)
            elif name == "bias":
                value = _normal(p.shape, 0.05, g)
            elif ".lora_A." in full or ".lora_B." in full:
                # Scaled so that (alpha / r) * B @ A is about half the size of the frozen weight.
                base_std = 0.7 / math.sqrt(model.config.vision_config.hidden_size)
                r = model.config.vision_config.lora_r
                std = math.sqrt(0.5 * base_std / (lora_scale * math.sqrt(r)))
                value = _normal(p.shape, std, g)
            elif isinstance(module, nn.Embedding) or name in ("class_embedding", "temporal_embedding"):
                value = _normal(p.shape, 0.1, g)
            elif name == "logit_scale":
                value = torch.tensor(logit_scale)
            elif p.ndim >= 2:
                # Larger query/key weights sharpen attention, so the pooled token depends on the input
                # more than on the biases and the class embedding.
                gain = 1.5 if any(f"{proj}_proj" in full for proj in "qk") else 0.7
                value = _normal(p.shape, gain / math.sqrt(math.prod(p.shape[1:])), g)
            else:
                raise AssertionError(f"no rule to randomise {full} {tuple(p.shape)}")
            p.copy_(value.to(p.dtype))
            done.add(id(p))
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    assert not missing, missing


def text_inputs(vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, 77) int64 ids: bos, random ids, end-of-text (the largest id) at 76, 4 and 30; zero padding."""
    rng = np.random.default_rng(seed)
    eot, bos = vocab_size - 1, vocab_size - 2
    ids = np.zeros((3, 77), dtype=np.int64)
    mask = np.zeros((3, 77), dtype=np.int64)
    for row, end in enumerate((76, 4, 30)):
        ids[row, 0] = bos
        ids[row, 1:end] = rng.integers(1, bos, size=end - 1)
        ids[row, end] = eot
        mask[row, : end + 1] = 1
    return ids, mask


def pixel_inputs(spec: dict, sizes: dict, seed: int) -> np.ndarray:
    """Inputs in the layout the reference vision model takes (video: b c t h w), stored as float16.

    N(0, 1) rounded to multiples of 1/16 in [-4, 4]: exact in float16 and compressible in the npz.
    """
    b, side = sizes["batch"], sizes["vision"]["image_size"]
    if spec["kind"] == "audio":
        shape = (b, 3, sizes["audio_grid"]["num_mel_bins"], sizes["audio_grid"]["target_length"])
    elif spec["kind"] == "video":
        shape = (b, 3, spec["vision"]["num_frames"], side, side)
    else:
        shape = (b, 3, side, side)
    values = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    return (np.clip(np.round(values * 16.0), -64, 64) / 16.0).astype(np.float16)


@torch.no_grad()
def run_model(model: nn.Module, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    model.eval()
    pixel_values = torch.from_numpy(pixels.astype(np.float32))
    text_raw = model.get_text_features(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    modality_raw = model.get_image_features(pixel_values=pixel_values)
    out = model(input_ids=torch.from_numpy(ids), pixel_values=pixel_values, attention_mask=torch.from_numpy(mask))
    return {
        "text_embeds": (text_raw / text_raw.norm(dim=-1, keepdim=True)).numpy(),
        "modality_embeds": (modality_raw / modality_raw.norm(dim=-1, keepdim=True)).numpy(),
        "text_features_raw": text_raw.numpy(),
        "modality_features_raw": modality_raw.numpy(),
        "logits_per_text": out.logits_per_text.numpy(),
        "logit_scale": np.asarray(model.logit_scale.detach().numpy(), dtype=np.float32),
    }


def save(model: nn.Module, directory: Path, how: str) -> None:
    if how == "safetensors":
        model.save_pretrained(directory)
    elif how == "bin":
        model.save_pretrained(directory, safe_serialization=False)
    elif how == "sharded-safetensors":
        model.save_pretrained(directory, max_shard_size="250KB")
    elif how == "sharded-bin":
        model.save_pretrained(directory, max_shard_size="250KB", safe_serialization=False)
    else:
        raise ValueError(how)


def restore_image_size(directory: Path, image_size: int) -> object:
    """The reference's init rewrites vision_config.image_size into a list; published configs carry an int."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    written = config["vision_config"]["image_size"]
    config["vision_config"]["image_size"] = image_size
    # The same formatting as transformers' PretrainedConfig.to_json_string.
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return written


def build_variant(name: str, spec: dict, sizes: dict, out_dir: Path, logit_scale: float) -> dict:
    started = time.time()
    _, model_class = CLASSES[spec["kind"]]
    torch.manual_seed(seed_of(name))  # the reference's own init draws from the global generator
    model = model_class(build_config(spec, sizes)).eval()
    randomise(model, seed_of(name), logit_scale)
    directory = out_dir / name
    if directory.exists():
        for old in directory.iterdir():
            old.unlink()
    save(model, directory, spec["save"])
    written = restore_image_size(directory, sizes["vision"]["image_size"])

    ids, mask = text_inputs(sizes["text"]["vocab_size"], seed_of(name) + 1)
    pixels = pixel_inputs(spec, sizes, seed_of(name) + 2)
    golden = run_model(model, pixels, ids, mask)

    reloaded, info = model_class.from_pretrained(directory, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"{name}: reload reported {problems}"
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys(), f"{name}: {set(saved) ^ set(loaded)}"
    changed = [k for k in saved if not torch.equal(saved[k], loaded[k])]
    assert not changed, f"{name}: from_pretrained changed {changed}"
    # Same weights, so the outputs agree; CPU kernels may round differently with the tensors' new
    # memory placement (seen at 4e-7 on full-size models), hence a tolerance rather than equality.
    again = run_model(reloaded, pixels, ids, mask)
    reload_diff = max(float(np.abs(value - again[key]).max()) for key, value in golden.items())
    assert reload_diff < 1e-5, f"{name}: outputs differ by {reload_diff} after from_pretrained"

    save_npz(directory / "golden.npz", pixel_values=pixels, input_ids=ids, attention_mask=mask, **golden)
    lora_keys = [k for k in model.state_dict() if "lora_" in k]
    return {
        "variant": name,
        "image_size_as_saved": written,
        "files": sorted(p.name for p in directory.iterdir()),
        "lora_keys": len(lora_keys),
        "reload_max_abs_diff": reload_diff,
        "seconds": round(time.time() - started, 1),
    }


# ---------------------------------------------------------------------------------------------------
# Preprocessing goldens.


@contextlib.contextmanager
def first_audio_crops():
    """The reference picks each third's crop start with np.random.choice: take the first start instead.

    Yields the list of starts taken, in call order.
    """
    original, taken = np.random.choice, []

    def first(a, *args, **kwargs):
        taken.append(int(np.asarray(a)[0]))
        return taken[-1]

    np.random.choice = first
    try:
        yield taken
    finally:
        np.random.choice = original


def soundfile_loader(path):
    """torchaudio.load needs torchcodec here; soundfile scales int16 by 1/32768 exactly as it does."""
    import soundfile

    data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), sample_rate


def summarise(name: str, tensor, store: dict) -> None:
    array = np.asarray(tensor, dtype=np.float32)
    flat = array.reshape(-1)
    rng = np.random.default_rng(seed_of(name))
    idx = np.sort(rng.choice(flat.size, size=min(4096, flat.size), replace=False)).astype(np.int64)
    store[f"{name}__shape"] = np.asarray(array.shape, dtype=np.int64)
    store[f"{name}__idx"] = idx
    store[f"{name}__values"] = flat[idx]
    store[f"{name}__sum"] = np.float64(flat.astype(np.float64).sum())
    store[f"{name}__abs_sum"] = np.float64(np.abs(flat.astype(np.float64)).sum())


def preprocess_goldens(out_dir: Path) -> dict:
    from decord import VideoReader, cpu
    from languagebind.audio import processing_audio
    from PIL import Image
    from torchvision.transforms._transforms_video import RandomHorizontalFlipVideo

    store: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        media = media_cases.make_media(tmp)
        # The reference opens files as they are; grey and RGBA images break its Normalize. Feed it the
        # RGB our pipeline reads (as an RGB PNG, lossless): grey repeated, transparent pixels laid over white.
        for src in ("gray.png", "rgba.png"):
            converted = Path(tmp) / f"{Path(src).stem}_as_rgb.png"
            image = Image.open(media[src])
            if image.mode == "RGBA":
                image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
            image.convert("RGB").save(converted)
            media[f"{src}:rgb"] = converted
            try:
                languagebind.LanguageBindImageProcessor(languagebind.LanguageBindImageConfig())(
                    images=[str(media[src])]
                )
                notes[src] = "reference accepted it unconverted"
            except Exception as error:  # recording how the reference fails
                notes[src] = f"{type(error).__name__}: {error}"

        image = languagebind.LanguageBindImageProcessor(languagebind.LanguageBindImageConfig())
        thermal = languagebind.LanguageBindThermalProcessor(languagebind.LanguageBindThermalConfig())
        for case, processor, key in (
            ("image_rgb", image, "rgb.png"),
            ("image_gray", image, "gray.png:rgb"),
            ("image_rgba", image, "rgba.png:rgb"),
            ("infrared_rgb", thermal, "rgb.png"),
            ("infrared_gray", thermal, "gray.png:rgb"),
        ):
            summarise(case, processor(images=[str(media[key])])["pixel_values"][0], store)

        depth = languagebind.LanguageBindDepthProcessor(
            languagebind.LanguageBindDepthConfig(vision_config={"max_depth": 10})
        )
        summarise("depth", depth(images=[str(media["depth.png"])])["pixel_values"][0], store)

        audio = languagebind.LanguageBindAudioProcessor(
            languagebind.LanguageBindAudioConfig(vision_config=dict(AUDIO_PREPROCESS))
        )
        processing_audio.torchaudio_loader = soundfile_loader
        for case, key in (("audio_short", "short.wav"), ("audio_long", "long.wav")):
            with first_audio_crops() as starts:
                summarise(case, audio(images=[str(media[key])])["pixel_values"][0], store)
            if starts:  # 25 s -> 2498 frames: the first of each np.array_split(range(2498 - 1036 + 1), 3)
                store[f"{case}__crop_starts"] = np.asarray(starts, dtype=np.int64)

        video = languagebind.LanguageBindVideoProcessor(
            languagebind.LanguageBindVideoConfig(vision_config={"num_frames": 8, "video_decode_backend": "decord"})
        )
        video.transform.transforms = [
            t for t in video.transform.transforms if not isinstance(t, RandomHorizontalFlipVideo)
        ]
        summarise("video", video(images=[str(media["clip.mp4"])])["pixel_values"][0], store)
        # The decoded frames the reference transforms: separates decoder from transform differences.
        reader = VideoReader(str(media["clip.mp4"]), ctx=cpu(0))
        frame_ids = np.linspace(0, len(reader) - 1, 8, dtype=int)
        batch = reader.get_batch(frame_ids)  # the reference sets decord's torch bridge
        frames = batch.numpy() if isinstance(batch, torch.Tensor) else batch.asnumpy()
        summarise("video_frames", frames, store)
        store["video_frames__frame_ids"] = frame_ids.astype(np.int64)

    save_npz(out_dir / "preprocess.npz", **store)
    return notes


def dsp_goldens(out_dir: Path) -> None:
    import torchaudio

    stereo = media_cases.short_audio().astype(np.float32) / 32768.0  # soundfile's float32 reading
    channel0 = torch.from_numpy(np.ascontiguousarray(stereo[:, 0]))
    resample_input = channel0[: media_cases.SAMPLE_RATE]
    resample_output = torchaudio.functional.resample(resample_input, orig_freq=44100, new_freq=16000)
    fbank_input = torchaudio.functional.resample(channel0[: 2 * media_cases.SAMPLE_RATE], 44100, 16000)
    fbank_output = torchaudio.compliance.kaldi.fbank(
        fbank_input[None, :],
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=112,
        dither=0.0,
        frame_length=25,
        frame_shift=10,
    )
    save_npz(
        out_dir / "dsp.npz",
        resample_input=resample_input.numpy(),
        resample_output=resample_output.numpy(),
        resample_orig_freq=np.int64(44100),
        resample_new_freq=np.int64(16000),
        fbank_input=fbank_input.numpy(),
        fbank_output=fbank_output.numpy(),
        fbank_sample_frequency=np.int64(16000),
        fbank_num_mel_bins=np.int64(112),
    )


def write_clip(path: Path) -> None:
    """Encode media_cases.clip_frames() as a 10 fps H.264 mp4 with PyAV (done once; the file is committed)."""
    import av

    frames = media_cases.clip_frames()
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "20", "bf": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size ViT-L/14 checkpoints (gigabytes)")
    parser.add_argument("--out", type=Path, help="output directory (default: tests/fixtures/parity)")
    parser.add_argument("--variants", help="comma-separated subset of the variants")
    parser.add_argument("--skip-media", action="store_true", help="skip preprocess.npz and dsp.npz")
    parser.add_argument("--rewrite-video", action="store_true", help="re-encode the committed clip.mp4")
    args = parser.parse_args()

    if args.full and args.out is None:
        parser.error("--full needs --out (outside the repository)")
    out_dir = args.out or FIXTURES
    out_dir.mkdir(parents=True, exist_ok=True)
    variants, sizes = (FULL_VARIANTS, FULL) if args.full else (VARIANTS, SMALL)
    chosen = args.variants.split(",") if args.variants else list(variants)
    for name in chosen:
        # A non-default scale per variant: a loader that reads logit_scale_init_value would be caught.
        logit_scale = 4.0 + 0.125 * list(variants).index(name)
        report = build_variant(name, variants[name], sizes, out_dir, logit_scale)
        print(json.dumps(report), flush=True)

    if not args.full and not args.skip_media:
        if args.rewrite_video or not media_cases.CLIP_MP4.exists():
            write_clip(media_cases.CLIP_MP4)
        notes = preprocess_goldens(out_dir)
        dsp_goldens(out_dir)
        print(json.dumps({"reference_on_unconverted_images": notes}), flush=True)


if __name__ == "__main__":
    main()
