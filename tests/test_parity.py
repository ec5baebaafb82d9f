"""Parity with the reference implementation (PKU-YuanGroup/LanguageBind), from committed goldens.

The fixtures were written by `tests/parity/make_fixtures.py` running the reference itself: small
random-weight checkpoints of every variant in the published format, their outputs for fixed inputs, and
its preprocessing of generated media (its random flip and random crop starts fixed to ours).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bindsearch import load_model, media
from bindsearch.media.audio import fbank, resample
from bindsearch.media.video import read_frames
from bindsearch.models import Preprocess, packed

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
VARIANTS = ["image", "infrared", "depth", "audio", "video", "video_lora", "video_vl_new"]
sys.path.insert(0, str(Path(__file__).parent / "parity"))


@pytest.mark.parametrize("linears", ["F.linear", "packed"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_embeddings_match_reference(variant, linears, monkeypatch):
    if linears == "packed" and not packed._onednn():
        pytest.skip("this torch has no oneDNN packed linear")
    monkeypatch.setattr(packed, "packing_pays", lambda device, dtype: linears == "packed")  # either way, any CPU
    golden = np.load(FIXTURES / variant / "golden.npz")
    model = load_model(str(FIXTURES / variant), device="cpu")
    assert any(isinstance(m, packed.PackedLinear) for m in model.modules()) is (linears == "packed")
    modality = next(iter(model.preprocess))
    pixels = torch.from_numpy(golden["pixel_values"].astype(np.float32))
    ours = model.embed(modality, pixels).numpy()
    text = model.embed("text", torch.from_numpy(golden["input_ids"])).numpy()
    assert np.abs(ours - golden["modality_embeds"]).max() < 1e-4
    assert np.abs(text - golden["text_embeds"]).max() < 1e-4
    assert model.logit_scale(modality) == pytest.approx(float(np.exp(golden["logit_scale"])), rel=1e-6)


def test_same_file_gives_bit_identical_embeddings():
    model = load_model(str(FIXTURES / "video_vl_new"), device="cpu")
    prep = model.preprocess["video"]
    clip = FIXTURES / "media" / "clip.mp4"
    small = Preprocess(**{**prep.to_dict(), "image_size": 56})
    a = model.embed("video", media.load("video", clip, small).unsqueeze(0))
    b = model.embed("video", media.load("video", clip, small).unsqueeze(0))
    assert torch.equal(a, b)


AUDIO = Preprocess(num_mel_bins=112, target_length=1036, sample_rate=16000)
CASES = {
    "image_rgb": ("image", "rgb.png"), "image_gray": ("image", "gray.png"), "image_rgba": ("image", "rgba.png"),
    "infrared_rgb": ("infrared", "rgb.png"), "infrared_gray": ("infrared", "gray.png"),
    "depth": ("depth", "depth.png"), "audio_short": ("audio", "short.wav"), "audio_long": ("audio", "long.wav"),
    "video": ("video", "clip.mp4"),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from media_cases import make_media

    return make_media(tmp_path_factory.mktemp("parity-media"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_preprocessing_matches_reference(case, generated):
    golden = np.load(FIXTURES / "preprocess.npz")
    modality, name = CASES[case]
    ours = media.load(modality, generated[name], AUDIO).numpy().astype(np.float64)
    assert ours.shape == tuple(golden[f"{case}__shape"])
    flat = ours.reshape(-1)
    assert np.abs(flat[golden[f"{case}__idx"]] - golden[f"{case}__values"]).max() < 1e-3
    assert abs(flat.sum() - golden[f"{case}__sum"]) < 1e-3 * flat.size ** 0.5 + 1e-6 * abs(golden[f"{case}__sum"])
    assert abs(np.abs(flat).sum() - golden[f"{case}__abs_sum"]) < 1e-6 * golden[f"{case}__abs_sum"] + 1.0


def test_decoded_video_frames_match_reference(generated):
    golden = np.load(FIXTURES / "preprocess.npz")
    if "video_frames__values" not in golden:
        pytest.skip("golden has no raw frames")
    frames = read_frames(generated["clip.mp4"], 8).astype(np.float64).reshape(-1)
    assert np.array_equal(frames[golden["video_frames__idx"]], golden["video_frames__values"])


def test_fbank_matches_torchaudio_kaldi():
    dsp = np.load(FIXTURES / "dsp.npz")
    ours = fbank(torch.from_numpy(dsp["fbank_input"].astype(np.float32)), int(dsp["fbank_sample_frequency"]),
                 int(dsp["fbank_num_mel_bins"])).numpy()
    assert ours.shape == dsp["fbank_output"].shape
    gap = np.abs(ours - dsp["fbank_output"])
    # Both are float32: in near-silent frames (log energies near -15) their FFTs' rounding differs by CPU. There
    # the same fbank in float64 is itself 3.8e-4 from torchaudio's, and ours measured 6.4e-5 on an AMD EPYC and
    # 2.6e-4 on an Emerald Rapids Xeon. A wrong window, bank or pre-emphasis moves the mean gap (measured
    # 6.4e-6) by orders of magnitude.
    assert gap.max() < 1e-3 and gap.mean() < 3e-5


def test_resample_matches_torchaudio():
    dsp = np.load(FIXTURES / "dsp.npz")
    ours = resample(torch.from_numpy(dsp["resample_input"].astype(np.float32)), int(dsp["resample_orig_freq"]),
                    int(dsp["resample_new_freq"])).numpy()
    assert ours.shape == dsp["resample_output"].shape
    assert np.abs(ours - dsp["resample_output"]).max() < 1e-5
