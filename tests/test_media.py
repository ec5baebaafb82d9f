"""Decoders: shapes, determinism, the preprocessing rules, and one clear MediaError per bad file."""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from bindsearch import media
from bindsearch.media import MediaError
from bindsearch.media.audio import crop_or_tile, fbank, resample
from bindsearch.media.video import frame_indices, read_frames
from bindsearch.media.writers import write_audio, write_depth_png, write_image, write_video
from bindsearch.models import Preprocess


@pytest.mark.parametrize(("modality", "shape"), [
    ("image", (3, 224, 224)), ("infrared", (3, 224, 224)), ("depth", (3, 224, 224)),
    ("audio", (3, 112, 1036)), ("video", (3, 8, 224, 224)),
])
def test_default_layouts(media_files, modality, shape):
    x = media.load(modality, media_files[modality])
    assert tuple(x.shape) == shape and x.dtype == torch.float32
    assert torch.equal(x, media.load(modality, media_files[modality])), "decoding must be deterministic"


def test_preprocess_follows_the_model(media_files):
    prep = Preprocess(image_size=32, num_frames=4, num_mel_bins=16, target_length=50)
    assert media.load("video", media_files["video"], prep).shape == (3, 4, 32, 32)
    assert media.load("audio", media_files["audio"], prep).shape == (3, 16, 50)


def test_thermal_is_infrared_and_gray_becomes_rgb(media_files):
    x = media.load("thermal", media_files["infrared"])
    assert torch.equal(x, media.load("infrared", media_files["infrared"]))
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
    pixels = [x[c] * std[c] + mean[c] for c in range(3)]
    assert torch.allclose(pixels[0], pixels[1], atol=1e-6) and torch.allclose(pixels[0], pixels[2], atol=1e-6)
    assert float(pixels[0].std()) > 0.05  # the frame itself, not a constant


def test_depth_png_in_millimetres_matches_npy_in_metres(tmp_path):
    mm = np.linspace(0, 12000, 64 * 48).reshape(48, 64)
    png = write_depth_png(tmp_path / "d.png", mm)
    np.save(tmp_path / "d.npy", np.rint(mm).astype(np.float32) / 1000.0)
    a, b = media.load("depth", png), media.load("depth", tmp_path / "d.npy")
    assert torch.allclose(a, b, atol=1e-6)
    # Beyond max_depth (10 m) everything is clipped to the same value.
    flat = np.full((48, 64), 11000.0)
    far = media.load("depth", write_depth_png(tmp_path / "far.png", flat))
    farther = media.load("depth", write_depth_png(tmp_path / "farther.png", flat + 900))
    assert torch.equal(far, farther)
    # Nearer than 1 cm, and no reading (0, as sensors write it), read as 1 cm, as LanguageBind's processor clips.
    def half(mm: float) -> np.ndarray:  # a map with a reading (500 mm) beside: one of no reading at all is skipped
        return np.concatenate([np.full((48, 32), mm), np.full((48, 32), 500.0)], axis=1)

    near = [media.load("depth", write_depth_png(tmp_path / f"{mm}mm.png", half(mm))) for mm in (0, 5, 10)]
    assert torch.equal(near[0], near[1]) and torch.equal(near[1], near[2])
    assert not torch.equal(near[2], media.load("depth", write_depth_png(tmp_path / "20mm.png", half(20))))


def test_8bit_image_is_not_a_depth_map(tmp_path):
    path = write_image(tmp_path / "d.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(MediaError, match="16-bit PNG"):
        media.load("depth", path)


def test_frame_indices_are_uniform_and_include_ends():
    assert frame_indices(50, 8).tolist() == [0, 7, 14, 21, 28, 35, 42, 49]
    assert frame_indices(3, 8).tolist() == [0, 0, 0, 0, 1, 1, 1, 2]


def test_video_frames_come_in_order(tmp_path):
    frames = np.stack([np.full((32, 32, 3), 10 + 20 * i, np.uint8) for i in range(12)])
    x = media.load("video", write_video(tmp_path / "ramp.mp4", frames), Preprocess(image_size=32, num_frames=4))
    means = (x[0] * 0.26862954 + 0.48145466).mean(dim=(1, 2)) * 255
    expected = np.array([10 + 20 * i for i in frame_indices(12, 4)])
    assert np.allclose(means.numpy(), expected, atol=3)


def test_resample_keeps_a_tone_and_length():
    t = np.arange(44100) / 44100
    wave = torch.from_numpy(np.sin(2 * np.pi * 440 * t).astype(np.float32))
    out = resample(wave, 44100, 16000)
    assert out.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(out.numpy()))
    assert abs(int(spectrum.argmax()) - 440) <= 1


def test_fbank_puts_energy_in_the_right_band():
    t = np.arange(16000) / 16000
    low = fbank(torch.from_numpy(np.sin(2 * np.pi * 300 * t).astype(np.float32)))
    high = fbank(torch.from_numpy(np.sin(2 * np.pi * 5000 * t).astype(np.float32)))
    assert low.shape == (98, 112)
    assert low.mean(0).argmax() < high.mean(0).argmax()


def test_long_audio_takes_first_start_of_each_third():
    mel = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    crops = crop_or_tile(mel, 8)  # starts 0..12 split in thirds: [0..4], [5..8], [9..12]
    assert crops[:, 0, 0].tolist() == [0.0, 5.0, 9.0]
    tiled = crop_or_tile(mel[:3], 8)
    assert tiled[0, :, 0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (16000, 1)])
def test_a_long_file_is_read_crop_by_crop_with_the_crops_of_the_whole(tmp_path, monkeypatch, rate, channels):
    """Only the samples under the three crops are read (a two-hour recording whole is gigabytes); the crops equal
    those cut from the whole file, to float rounding (fbank removes each frame's mean, so a DC offset drops out)."""
    from bindsearch.media import audio

    seconds = 50  # 4,999 fbank frames: more than LONG_FILE_CROPS crops of 1,036
    t = np.arange(seconds * rate) / rate
    wave = 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / seconds)) + 0.2
    path = write_audio(tmp_path / "long.wav", np.stack([wave * (c + 1) / channels for c in range(channels)], 1), rate)
    whole_reads = []
    read_audio = audio.read_audio
    monkeypatch.setattr(audio, "read_audio", lambda *args: whole_reads.append(args) or read_audio(*args))
    by_crops = media.load("audio", path)
    assert not whole_reads  # the file was never read whole
    monkeypatch.setattr(audio, "LONG_FILE_CROPS", 10**9)
    whole = media.load("audio", path)
    assert by_crops.shape == whole.shape == (3, 112, 1036)
    difference = (by_crops - whole).abs()  # largest in near-silent mel bands, where log() magnifies rounding
    assert float(difference.max()) < 1e-3 and float(difference.mean()) < 1e-5  # media parity's own 1e-3 bar


def test_a_raw_aac_stream_is_read_to_its_end_not_to_a_length_guessed_from_its_start(tmp_path):
    """A raw .aac's header length is guessed from its first packets' bit rate: loud noise then a quiet tone read
    as 18.7 s of 40, and a long one's back crop came from its first third."""
    import av

    from bindsearch.media import audio

    rate = 44100
    rng = np.random.default_rng(0)
    t = np.arange(30 * rate) / rate
    wave = np.concatenate([rng.uniform(-0.9, 0.9, 10 * rate), 0.01 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32)
    path = write_audio(tmp_path / "loud_first.aac", wave, rate)
    samples, got = audio.read_audio(path)
    assert got == rate and samples.shape[-1] / rate == pytest.approx(40, abs=0.1)
    with av.open(str(path)) as container:
        assert audio._av_seconds(container) < 30  # the header's guess
    assert audio._header_length(path) is None  # no crops planned from that guess: its samples are counted
    # Nor are crops read by seeking in Matroska: its length counts Opus's padding, and its seeks land 24 samples
    # early (a 50 s .webm's crops were 0.9 from the whole read's).
    webm = write_audio(tmp_path / "memo.webm", np.zeros(96000), 48000)
    assert audio._header_length(webm) is None


@pytest.mark.parametrize("name", ["memo.m4a", "podcast.webm", "radio.aac", "album.wma"])
def test_a_long_file_only_pyav_reads_is_read_crop_by_crop_not_whole(tmp_path, monkeypatch, name):
    """AAC in .m4a (voice memos, podcasts) was decoded whole: 20 minutes took 4.5 GB. It is read by seeking to each
    crop. Opus in .webm (what yt-dlp saves), raw AAC and WMA, where seeks do not land on the sample (or a raw
    stream's header only guesses its length), are decoded twice: counting, then keeping the crops' samples. Either
    way the crops equal the whole read's."""
    from bindsearch.media import audio

    rate, seconds = 48000, 50
    t = np.arange(seconds * rate) / rate
    wave = 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / seconds))
    path = write_audio(tmp_path / name, np.stack([wave, wave / 2], 1), rate)
    whole_reads = []
    read_audio = audio.read_audio
    monkeypatch.setattr(audio, "read_audio", lambda *args: whole_reads.append(args) or read_audio(*args))
    by_crops = media.load("audio", path)
    assert not whole_reads
    monkeypatch.setattr(audio, "LONG_FILE_CROPS", 10**9)
    whole = media.load("audio", path)
    difference = (by_crops - whole).abs()
    assert by_crops.shape == whole.shape and float(difference.max()) < 1e-3 and float(difference.mean()) < 1e-5



def test_a_long_file_that_decodes_shorter_the_second_time_is_read_whole(tmp_path, monkeypatch):
    """Truncated or rewritten between the two passes: the crops' buffers were left part unfilled (np.empty)."""
    from bindsearch.media import audio

    rate = 48000
    path = write_audio(tmp_path / "podcast.webm", 0.3 * np.sin(np.arange(50 * rate) / 30), rate)
    passes, decoded = [], audio._decoded

    def shorter_the_second_time(*args):
        passes.append(args)
        chunks = decoded(*args)
        return chunks if len(passes) == 1 else (chunk for chunk, _ in zip(chunks, range(100), strict=False))

    monkeypatch.setattr(audio, "_decoded", shorter_the_second_time)
    whole_reads = []
    read_audio = audio.read_audio
    monkeypatch.setattr(audio, "read_audio", lambda *args: whole_reads.append(args) or read_audio(*args))
    media.load("audio", path)
    assert len(passes) >= 2 and whole_reads

def test_bad_files_raise_one_line_media_errors(tmp_path, media_files, capfd):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    fake_png = tmp_path / "notes.png"
    fake_png.write_text("not an image")
    wav = media_files["audio"].read_bytes()
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(wav[: len(wav) // 3])
    cases = [("video", empty, "empty"), ("image", fake_png, "not a readable image"),
             ("audio", truncated, "truncated"), ("audio", tmp_path / "missing.wav", "no such file"),
             ("video", fake_png, "not a readable video")]
    for modality, path, cause in cases:
        with pytest.raises(MediaError) as info:
            media.load(modality, path)
        message = str(info.value)
        assert str(path) in message and cause in message and "\n" not in message
    # ...and nothing else: the native decoders' own log lines about those files do not reach stderr.
    assert capfd.readouterr().err == ""


def test_an_image_over_pillows_safety_limit_is_refused_clearly(media_files, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 64x48 test image is then a "decompression bomb"
    with pytest.raises(media.MediaError, match=r"photo\.png: too large to decode safely .*; downscale it$"):
        media.load("image", media_files["image"])


def test_an_image_pillow_only_warns_about_decodes_quietly(media_files, monkeypatch):
    from PIL import Image

    # 64x48 = 3072 pixels: over this limit, where Pillow warns, and under twice it, where Pillow refuses.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for modality in ("image", "infrared", "depth"):
            assert media.load(modality, media_files[modality]).shape == (3, 224, 224)
    assert [str(w.message) for w in caught] == []


def test_short_audio_is_refused_clearly(tmp_path):
    path = write_audio(tmp_path / "click.wav", np.zeros(441), 44100)  # 0.01 s, at a rate that is resampled
    with pytest.raises(MediaError) as info:
        media.load("audio", path)
    assert str(info.value) == (f"{path}: audio is 0.010 s long, shorter than one 25 ms analysis frame; "
                               "nothing to embed")


@pytest.mark.parametrize(("modality", "name"), [
    ("image", "a.png"), ("infrared", "ir.png"), ("depth", "d.png"), ("depth", "d.npy"), ("audio", "a.wav"),
    ("audio", "a.m4a"), ("video", "v.mp4"), ("text", "t.txt"),
])
def test_a_zero_byte_file_is_empty_whatever_its_modality(tmp_path, modality, name):
    path = tmp_path / name
    path.touch()
    with pytest.raises(MediaError) as info:
        media.read_text(path) if modality == "text" else media.load(modality, path)
    assert str(info.value) == f"{path}: file is empty"


def test_a_npy_depth_map_is_never_unpickled_and_says_what_it_must_be(tmp_path):
    junk = tmp_path / "depth" / "x.npy"
    junk.parent.mkdir()
    junk.write_bytes(b"\x00garbage" * 100)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"depth": 1.0}, None], dtype=object))
    flags = tmp_path / "flags.npy"
    np.save(flags, np.ones((4, 4), bool))
    rule = "depth .npy must be a 2-D array: float in metres, or integer in millimetres (numpy.save)"
    for path, cause in [(junk, "not a NumPy array file"), (objects, "holds Python objects, not numbers"),
                        (flags, "holds bool values, not depths")]:
        with pytest.raises(MediaError) as info:
            media.load("depth", path)
        assert str(info.value) == f"{path}: {cause}; {rule}"


def test_an_integer_npy_depth_map_counts_millimetres_and_a_forged_header_allocates_nothing(tmp_path):
    """np.save of a depth PNG's array holds millimetres: read as metres, every pixel saturated at max_depth."""
    metres = np.random.default_rng(0).uniform(0.5, 5.0, (40, 40)).astype(np.float32)
    np.save(tmp_path / "m.npy", metres)
    np.save(tmp_path / "mm.npy", np.round(metres * 1000).astype(np.uint16))
    np.testing.assert_allclose(media.load("depth", tmp_path / "mm.npy"), media.load("depth", tmp_path / "m.npy"),
                               atol=2e-3)
    forged = tmp_path / "forged.npy"
    with forged.open("wb") as handle:  # a header claiming 40 GB before 64 bytes of data
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (100_000, 100_000)})
        handle.write(bytes(64))
    with pytest.raises(MediaError, match="more than the file holds"):
        media.load("depth", forged)


def write_voice_memo(path):
    """An .mp4 holding one second of AAC sound and no picture, as phones save voice memos."""
    return write_audio(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)

def test_an_audio_only_container_read_as_video_points_to_audio(tmp_path, capfd):
    path = write_voice_memo(tmp_path / "voice.mp4")
    with pytest.raises(MediaError) as info:
        media.load("video", path)
    assert str(info.value) == f"{path}: no video stream; it holds sound only: read it as audio"
    assert media.load("audio", path).shape == (3, 112, 1036)  # the hint is right
    assert media.sound_only(path) and not media.sound_only(tmp_path / "missing.mp4")
    assert capfd.readouterr().err == ""


def test_a_podcast_with_cover_art_is_sound_and_a_video_with_cover_art_shows_its_picture(tmp_path):
    """MP4 carries cover art as a one-frame video stream (attached_pic): a podcast .mp4 counted as video, and was
    embedded as eight copies of its cover, its sound never heard."""
    import av

    def cover_art(path, frames=None):
        with av.open(str(path), "w") as out:
            sound, cover = out.add_stream("aac", rate=16000), out.add_stream("mjpeg")
            sound.layout, cover.width, cover.height, cover.pix_fmt = "mono", 32, 32, "yuvj420p"
            cover.disposition = av.stream.Disposition.attached_pic
            picture = None
            if frames is not None:
                picture = out.add_stream("libx264", rate=4)
                picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
            art = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 250, np.uint8), format="rgb24")
            for packet in [*cover.encode(art.reformat(format="yuvj420p")), *cover.encode(None)]:
                out.mux(packet)
            for frame in frames if frames is not None else ():
                out.mux(picture.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            if picture is not None:
                out.mux(picture.encode(None))
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)[None]
            for start in range(0, wave.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = 16000
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        return path

    podcast = cover_art(tmp_path / "podcast.mp4")
    assert media.sound_only(podcast) and media.modality_of(podcast)[0] == "audio"
    with pytest.raises(MediaError, match="no video stream; it holds sound only"):
        media.load("video", podcast)
    dark = np.zeros((8, 32, 32, 3), np.uint8)
    film = cover_art(tmp_path / "film.mp4", dark)
    assert not media.sound_only(film)
    assert read_frames(film, 4).max() < 40  # its dark frames, not the white cover
    assert read_frames(film, 4, (0.0, 1.0)).max() < 40


def test_a_file_cut_short_says_so_not_only_ffmpegs_invalid_data(tmp_path):
    """A download stopped part way: FFmpeg's "Invalid data found when processing input" said nothing to do."""
    import soundfile

    t = np.arange(16000 * 4) / 16000
    soundfile.write(tmp_path / "whole.flac", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(MediaError, match="not a readable audio file \\(damaged, cut short or of another kind: "
                                         "FFmpeg found invalid data; copy it again, or re-save it\\)$"):
        media.load("audio", tmp_path / "cut.flac")


def test_a_cut_mp3_decodes_without_libmpg123_printing_beside_it(tmp_path, capfd):
    """libmpg123 printed "Warning: Xing stream size off by more than 1%" twice, naming no file, at the top of
    `index`'s output, about a file that decodes."""
    import soundfile

    t = np.arange(3 * 16000) / 16000
    soundfile.write(tmp_path / "full.mp3", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) * 2 // 3])
    assert media.load("audio", tmp_path / "cut.mp3").shape == (3, 112, 1036)
    # A command-line search is silenced: one thread of its own, and LanceDB's daemon thread. The window plan reads
    # the header too.
    import subprocess

    code = ("import sys, lancedb; from bindsearch import media; p = sys.argv[1]; "
            "print(media.load('audio', p).shape[0], media.duration('audio', p) > 0)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cut.mp3")], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert (run.returncode, run.stdout, run.stderr) == (0, "3 True\n", "")
    capfd.readouterr()
    # Beside other threads stderr is the process's, not the decoder's: a line another thread writes while a file
    # decodes is not lost (a script's warnings and logging vanished while a video decoded in a worker thread).
    import threading

    decoding = threading.Event()
    done = threading.Event()

    def decode() -> None:
        while not done.is_set():
            media.load("audio", tmp_path / "full.mp3")
            decoding.set()

    threads = [threading.Thread(target=decode) for _ in range(2)]
    for thread in threads:
        thread.start()
    decoding.wait()
    for i in range(50):
        os.write(2, f"still heard {i}\n".encode())
        time.sleep(0.002)
    done.set()
    for thread in threads:
        thread.join()
    heard = [line for line in capfd.readouterr().err.splitlines() if line.startswith("still heard")]
    assert heard == [f"still heard {i}" for i in range(50)]


def test_guess_modality_uses_extension_and_folder(tmp_path):
    assert media.guess_modality(tmp_path / "a.MP4")[0] == "video"
    assert media.guess_modality(tmp_path / "x" / "depth" / "1.png")[0] == "depth"
    assert media.guess_modality(tmp_path / "Thermal" / "1.jpg")[0] == "infrared"
    assert media.guess_modality(tmp_path / "notes.txt")[0] == "text"
    assert media.guess_modality(tmp_path / "notes.docx")[0] is None
    # Only the folders from the one given to `index` down count: `index .` in ~/depth/holiday holds photos.
    holiday = tmp_path / "depth" / "holiday"
    assert media.guess_modality(holiday / "beach.jpg", within=holiday)[0] == "image"
    assert media.guess_modality(holiday / "ir" / "1.png", within=holiday)[0] == "infrared"
    assert media.guess_modality(holiday / "1.png", within=tmp_path / "depth")[0] == "depth"  # its own name counts


def test_nan_audio_is_one_media_error_and_never_reaches_an_index(tmp_path):
    import soundfile

    wave = (0.3 * np.sin(np.arange(3 * 16000) / 16000 * 2764)).astype(np.float32)
    wave[1000] = np.nan
    soundfile.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match=r"nan\.wav: audio holds NaN or infinite samples"):
        media.load("audio", tmp_path / "nan.wav")


def test_a_sixteen_bit_or_float_image_is_stretched_not_clipped_white(tmp_path):
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:64]
    raw = (20000 + 60 * xx + 40 * yy).astype(np.uint16)  # a raw radiometric thermal frame
    low, high = np.percentile(raw, [1, 99])
    Image.fromarray((np.clip((raw - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)).save(
        tmp_path / "ir8.png")  # the frame as a camera's automatic gain shows it
    raw[0, 0] = 65535  # a hot pixel, which must not grey out the rest
    Image.fromarray(raw).save(tmp_path / "ir16.png")
    Image.fromarray(raw.astype(np.float32) / 1e5).save(tmp_path / "irf.tiff")
    prep = Preprocess(image_size=32)
    eight = media.load("infrared", tmp_path / "ir8.png", prep)
    for name in ("ir16.png", "irf.tiff"):
        x = media.load("infrared", tmp_path / name, prep)
        assert x.std() > 0.5 and (x - eight).abs().mean() < 0.02, name  # the 8-bit export of the same frame


def test_transparent_pixels_are_read_over_white_as_a_viewer_shows_them(tmp_path):
    """The alpha was dropped: a black logo on a transparent background became a black square, and transparent
    pixels showed the colour they happen to store."""
    from PIL import Image, ImageDraw

    logo = Image.new("RGBA", (64, 64), (255, 0, 255, 0))  # transparent, storing magenta
    ImageDraw.Draw(logo).ellipse((16, 16, 47, 47), fill=(0, 0, 0, 255))
    logo.save(tmp_path / "logo.png")
    logo.convert("RGB").save(tmp_path / "flat.png")  # the same pixels with the alpha dropped
    shown = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(shown).ellipse((16, 16, 47, 47), fill=(0, 0, 0))
    shown.save(tmp_path / "shown.png")
    palette = logo.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)  # a GIF-style palette, one entry clear
    palette.info["transparency"] = palette.getpixel((0, 0))
    palette.save(tmp_path / "palette.png", transparency=palette.getpixel((0, 0)))
    prep = Preprocess(image_size=32)
    expected = media.load("image", tmp_path / "shown.png", prep)
    for name in ("logo.png", "palette.png"):
        assert (media.load("image", tmp_path / name, prep) - expected).abs().max() < 1e-6, name
    assert (media.load("image", tmp_path / "flat.png", prep) - expected).abs().max() > 1  # what was read before


def test_a_float_tiff_depth_map_is_in_metres(tmp_path):
    from PIL import Image

    metres = (0.5 + np.random.default_rng(0).random((40, 40)) * 7.5).astype(np.float32)
    Image.fromarray(metres).save(tmp_path / "depth.tiff")
    np.save(tmp_path / "depth.npy", metres)
    assert torch.equal(media.load("depth", tmp_path / "depth.tiff"), media.load("depth", tmp_path / "depth.npy"))


def test_a_depth_map_with_no_finite_value_is_a_media_error_and_nan_pixels_are_no_reading(tmp_path):
    from PIL import Image

    nothing = np.full((24, 32), np.nan, np.float32)
    Image.fromarray(nothing).save(tmp_path / "nan.tiff")
    np.save(tmp_path / "nan.npy", nothing)
    for name in ("nan.tiff", "nan.npy"):  # before: embedded as a map of zeros
        with pytest.raises(MediaError, match=rf"{name}: depth map holds no finite value"):
            media.load("depth", tmp_path / name)
    np.save(tmp_path / "zeros.npy", np.zeros((24, 32), np.float32))
    write_depth_png(tmp_path / "zeros.png", np.zeros((24, 32)))
    for name in ("zeros.npy", "zeros.png"):  # a blank frame: all were embedded as one vector
        with pytest.raises(MediaError, match=rf"{name}: depth map holds no reading \(every pixel 0 or less\)"):
            media.load("depth", tmp_path / name)
    some = np.full((24, 32), 2.0, np.float32)
    some[:5] = np.nan
    np.save(tmp_path / "some.npy", some)
    np.save(tmp_path / "zeros.npy", np.where(np.isnan(some), 0.0, some).astype(np.float32))
    assert torch.equal(media.load("depth", tmp_path / "some.npy"), media.load("depth", tmp_path / "zeros.npy"))


def test_an_exif_rotated_photo_is_embedded_upright(tmp_path):
    from PIL import Image

    upright = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 32, 3), dtype=np.uint8))
    upright.save(tmp_path / "upright.jpg", quality=95)
    stored = Image.open(tmp_path / "upright.jpg").transpose(Image.Transpose.ROTATE_90)  # as a phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    prep = Preprocess(image_size=32)
    x, want = media.load("image", tmp_path / "phone.jpg", prep), media.load("image", tmp_path / "upright.jpg", prep)
    assert (x - want).abs().mean() < 0.1


@pytest.mark.parametrize(("rotation", "band_side"), [(0, "top"), (90, "left"), (-90, "right"), (180, "bottom")])
def test_a_portrait_phone_video_is_turned_as_players_turn_it(tmp_path, rotation, band_side):
    """A red band along the top of the stored frames lands where the display matrix turns it (counter-clockwise
    degrees, FFmpeg's rule): phones store portrait video sideways and say so there. decord refuses 90 degrees,
    so those frames come through PyAV, whole files and windows alike."""
    from bindsearch.media.video import read_frames

    frames = np.zeros((12, 48, 64, 3), np.uint8)
    frames[:, :8] = (255, 0, 0)
    path = write_video(tmp_path / "phone.mp4", frames, fps=4, rotation=rotation)
    for got in (read_frames(path, 2), read_frames(path, 2, window=(1.0, 2.0))):
        assert got.shape[1:3] == ((64, 48) if rotation in (90, -90) else (48, 64))
        red = got[0, :, :, 0] > 128
        sides = {"top": red[0], "bottom": red[-1], "left": red[:, 0], "right": red[:, -1]}
        assert {side for side, line in sides.items() if line.all()} == {band_side}


@pytest.mark.parametrize("suffix, size, edge", [(".jpg", (1800, 2400), 0.1), (".png", (1800, 2400), 0.1),
                                                (".jpg", (1793, 1802), 0.2)])
def test_a_large_photo_is_decoded_cheaply_to_nearly_the_same_input(tmp_path, monkeypatch, suffix, size, edge):
    """A JPEG decoded at a reduced DCT scale, an image still twice 4x the input resized in uint8: the tower's
    input moves by a fraction of an 8-bit step (0.015 in normalised units) on average, and at most `edge` at the
    hard edge. A side the DCT scale does not divide (1793 rows at half scale: 897, the last a part-pixel) loses
    that part: kept, it resized the picture to other proportions, a column off (mean 0.0097, at most 1.24)."""
    from PIL import Image

    from bindsearch.media import image

    y, x = np.mgrid[0:size[0], 0:size[1]] / 300.0
    pixels = np.stack([np.sin(x + c) * np.cos(y - c) for c in range(3)], -1) * 100 + 128
    pixels[600:900, 700:1500] = (250, 20, 40)  # a hard edge
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"big{suffix}", quality=92)
    fast = media.load("image", tmp_path / f"big{suffix}")
    monkeypatch.setattr(image, "PREFILTER", 10**9)
    exact = media.load("image", tmp_path / f"big{suffix}")
    apart = (fast - exact).abs()
    assert fast.shape == exact.shape == (3, 224, 224)
    assert float(apart.mean()) < 0.004 and float(apart.max()) < edge


@pytest.mark.parametrize("suffix", [".HEIC", ".heif", ".avif"])
def test_phone_photos_in_heic_and_avif_are_images(tmp_path, suffix):
    from PIL import Image

    pytest.importorskip("pillow_heif")  # a dependency; skipped only where an install left it out
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (200, 30, 30)
    png, other = tmp_path / "a.png", tmp_path / f"a{suffix}"
    Image.fromarray(pixels).save(png)
    if suffix == ".avif":
        Image.fromarray(pixels).save(other, quality=95)  # Pillow's own codec
    else:  # written without teaching Pillow HEIF: reading it is bindsearch's to arrange
        import pillow_heif

        pillow_heif.from_pillow(Image.fromarray(pixels)).save(other, quality=95)
    assert media.guess_modality(other)[0] == "image"
    assert float((media.load("image", other) - media.load("image", png)).abs().mean()) < 0.05


def test_windows_of_a_variable_rate_video_are_cut_by_the_frames_timestamps(tmp_path):
    """30 s of red at 10 fps, then 10 s of blue at 1 fps (a screen recording): the average rate, 7.9 fps, put six
    red frames into the window 0:30-0:40 on decord's path."""
    from fractions import Fraction

    import av

    from bindsearch.media.video import read_frames

    path = tmp_path / "screen.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base, stream.options = Fraction(1, 1000), {"bf": "0"}
        pts = 0
        for colour, step in [((255, 0, 0), 100)] * 300 + [((0, 0, 255), 1000)] * 10:
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), colour, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += step
        for packet in stream.encode():
            container.mux(packet)
    for window, colour in [((30.0, 40.0), "blue"), ((20.0, 30.0), "red")]:
        frames = read_frames(path, 8, window)
        assert {"red" if f[..., 0].mean() > 128 else "blue" for f in frames} == {colour}


def test_a_very_long_strip_is_cut_to_its_centre_before_resizing(tmp_path):
    import resource

    strip = np.random.default_rng(2).integers(0, 256, (2, 40000, 3), dtype=np.uint8)
    write_image(tmp_path / "strip.png", strip)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = media.load("image", tmp_path / "strip.png")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert x.shape == (3, 224, 224) and grown_mb < 500  # resized whole, it would take 12 GB
    square = np.random.default_rng(3).integers(0, 256, (40, 300, 3), dtype=np.uint8)  # 7.5:1, within the ratio
    write_image(tmp_path / "wide.png", square)
    from bindsearch.media.image import _centre_band

    pixels = torch.from_numpy(square).permute(2, 0, 1).float()
    assert _centre_band(pixels) is pixels


def test_resampling_at_an_odd_rate_takes_the_sparse_path_with_the_dense_weights():
    from bindsearch.media import audio

    wave = torch.randn(2, 3 * 44100, generator=torch.Generator().manual_seed(0))
    for rate in (44100, 8000, 22050):  # small kernels: the dense path, compared with the sparse one
        g = np.gcd(rate, 16000)
        dense, sparse = resample(wave[:, :3 * rate], rate, 16000), audio._resample_sparse(
            wave[:, :3 * rate], rate // g, 16000 // g)
        assert dense.shape == sparse.shape and (dense - sparse).abs().max() < 2e-6
    rate = 22254  # 11127:8000, a 356 MB dense kernel
    t = torch.arange(2 * rate) / rate
    out = resample(torch.sin(2 * np.pi * 440 * t)[None], rate, 16000)
    want = torch.sin(2 * np.pi * 440 * torch.arange(out.shape[-1]) / 16000)
    assert out.shape[-1] == 32000 and (out[0, 200:-200] - want[200:-200]).abs().max() < 2e-3
    built = audio._sinc_kernel.cache_info().misses
    resample(torch.zeros(1, 1000), 22254, 16000)
    assert audio._sinc_kernel.cache_info().misses == built  # no dense kernel was built for it


def test_eight_bit_audio_through_pyav_is_centred_at_silence(tmp_path):
    import av

    from bindsearch.media.audio import read_audio

    wave = 0.5 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220)
    with av.open(str(tmp_path / "u8.mkv"), "w") as container:
        stream = container.add_stream("pcm_u8", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((wave * 128 + 128).round().astype(np.uint8)[None], format="u8",
                                           layout="mono")
        frame.rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    samples, rate = read_audio(tmp_path / "u8.mkv")
    assert rate == 16000 and abs(float(samples.mean())) < 0.01 and abs(float(samples.max()) - 0.5) < 0.01


def test_a_sound_whose_name_is_not_utf8_is_named_for_what_it_is(tmp_path):
    """libsndfile, FFmpeg and decord take UTF-8 names: a Latin-1 one was 'could not decode as audio
    (UnicodeEncodeError ...)', of a file that decodes."""
    import shutil

    import soundfile

    good = tmp_path / "ok.wav"
    soundfile.write(good, np.full(16000, 0.1, np.float32), 16000)
    latin = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.wav")
    shutil.copy(good, latin)
    with pytest.raises(media.MediaError, match=r"caf\\xe9\.wav: its name is not UTF-8, which the audio decoders"):
        media.load("audio", latin)


def write_numbered_video(path, codec: str, frames: int, options: dict[str, str], container_format: str | None = None,
                         noise: bool = False, first_pts: int | None = None):
    """`frames` 64x48 frames at 10 fps, frame i showing i in binary: twelve 16x16 squares, white for a one. `noise`
    makes each frame a few kilobytes (MPEG-PS gives a timestamp to the first frame starting in each 2 KiB pack).
    `first_pts` (in tenths of a second) below 0 hides the frames before 0 behind an MP4 edit list."""
    import av

    rng = np.random.default_rng(0)
    bits = 1 << np.arange(12)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = options
        if noise:
            stream.bit_rate = 2_000_000
        for i in range(frames):
            squares = np.where(i & bits, 255, 0).reshape(3, 4).repeat(16, axis=0).repeat(16, axis=1)
            pixels = np.repeat(squares[..., None], 3, axis=2)
            if noise:
                pixels = pixels + rng.integers(-40, 40, pixels.shape)
            picture = av.VideoFrame.from_ndarray(np.clip(pixels, 0, 255).astype(np.uint8), format="rgb24")
            if first_pts is not None:
                picture.pts = first_pts + i
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_numbers(frames: np.ndarray) -> list[int]:
    """The numbers `write_numbered_video` drew on (t, 48, 64, 3) frames."""
    squares = frames.reshape(len(frames), 3, 16, 4, 16, 3)[:, :, 4:12, :, 4:12].mean(axis=(2, 4, 5)) > 128
    return (squares.reshape(len(frames), 12) * (1 << np.arange(12))).sum(axis=1).tolist()


@pytest.mark.parametrize(("name", "codec", "options", "container_format"), [
    ("h264.avi", "libx264", {"g": "24"}, None),  # B-frames in AVI, which keeps no presentation times
    ("xvid.avi", "mpeg4", {"bf": "2", "g": "24"}, None),
    ("dvd.mpg", "mpeg2video", {"bf": "2", "g": "12"}, None),
    ("camera.mts", "libx264", {"g": "24"}, "mpegts"),
    ("broadcast.ts", "mpeg2video", {"bf": "2", "g": "12"}, "mpegts"),
    ("divx.mp4", "mpeg4", {"bf": "2", "g": "24"}, None),
    ("old.wmv", "wmv2", {"g": "24"}, "asf"),
])
@pytest.mark.parametrize("decord", ["decord", "no decord"])
def test_the_frames_picked_are_the_ones_asked_for_in_every_container(tmp_path, monkeypatch, name, codec, options,
                                                                     container_format, decord):
    """decord's seeks land elsewhere in these (MPEG-TS: 0, 57, 114... came back as 128, 185, 242...; a B-frame
    AVI's window as one early frame repeated); PyAV's windows started late where its seek landed late (MPEG-TS
    and -PS), a frame early in an AVI with B-frames, and scrambled in an H.264 AVI."""
    from bindsearch.media.video import read_frames, window_times

    if decord == "no decord":  # PyAV reads everything, as where decord is not installed
        monkeypatch.setitem(sys.modules, "decord", None)
    path = write_numbered_video(tmp_path / name, codec, 120, options, container_format, noise=name.endswith(".mpg"))
    assert frame_numbers(read_frames(path, 8)) == frame_indices(120, 8).tolist()
    for window in [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]:
        want = np.floor(window_times(window, 8) * 10 + 1e-6).astype(int).tolist()  # on screen then, at 10 frames/s
        assert frame_numbers(read_frames(path, 8, window)) == want, window


@pytest.mark.parametrize("decord", ["decord", "no decord"])
@pytest.mark.parametrize("container_format", [None, "matroska", "webm"])
def test_a_window_of_a_variable_rate_video_shows_what_is_on_screen_then(tmp_path, monkeypatch, decord,
                                                                       container_format):
    """A screen recording writes a frame when the picture changes: green from 15 s to 40 s. The window 20-30 s
    showed the blue frame of 40 s (the first frame starting at or after its start, or a number from the average
    rate), and a search put blue 20 s early. A browser's recording (WebM with no length in its headers, which
    decord refuses) was cut by a count of its packets at their average rate (found by a review)."""
    import av

    from bindsearch.media.video import read_frames

    if decord == "no decord":
        monkeypatch.setitem(sys.modules, "decord", None)
    colours = {0: (255, 0, 0), 150: (0, 255, 0), 400: (0, 0, 255), 500: (255, 255, 255), 599: (255, 255, 0)}
    path = tmp_path / {None: "screen.mp4", "matroska": "screen.mkv", "webm": "screen.webm"}[container_format]
    live = {"live": "1"} if container_format == "webm" else {}  # as MediaRecorder writes it: no duration
    with av.open(str(path), "w", format=container_format, options=live) as out:
        stream = out.add_stream("libvpx" if container_format == "webm" else "libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for pts, colour in colours.items():  # at 10 frames a second: frame 150 is at 15 s
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), colour, np.uint8), format="rgb24")
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    def shown(window):
        pixels = read_frames(path, 4, window)[:, 32, 32].astype(int)
        return [min(colours.values(), key=lambda c: np.abs(np.subtract(c, p)).sum()) for p in pixels]

    red, green, blue, white = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
    assert shown((10.0, 20.0)) == [red, red, green, green]  # 11.25, 13.75 | 16.25, 18.75
    assert shown((20.0, 30.0)) == [green] * 4
    assert shown((30.0, 40.0)) == [green] * 4
    assert shown((40.0, 50.0)) == [blue] * 4
    assert shown((50.0, 59.0)) == [white] * 4


@pytest.mark.parametrize("decord", ["decord", "no decord"])
def test_a_window_of_a_video_trimmed_by_an_edit_list_starts_where_it_is_shown(tmp_path, monkeypatch, decord):
    """`ffmpeg -ss 1 -c copy` keeps the GOP before the cut and an edit list that hides it: decord counted the
    hidden frames, and its windows came a second (a GOP) early (found by a review)."""
    from bindsearch.media.video import read_frames, window_times

    if decord == "no decord":
        monkeypatch.setitem(sys.modules, "decord", None)
    path = write_numbered_video(tmp_path / "trimmed.mp4", "libx264", 120, {"g": "20", "bf": "0"}, first_pts=-10)
    for window in [(0.0, 4.0), (4.0, 8.0)]:  # frame 10 is the first shown, at 0 s
        want = (10 + np.floor(window_times(window, 8) * 10 + 1e-6)).astype(int).tolist()
        assert frame_numbers(read_frames(path, 8, window)) == want, window


@pytest.mark.parametrize("missing", [slice(1, None, 3), slice(None)])
def test_decord_timestamps_missing_hand_the_file_to_pyav(tmp_path, monkeypatch, missing):
    """A frame decord finds no timestamp for reads -1e14 (MPEG-PS) or -9e17 (every frame of an AVI): subtracted
    from the first and searched as if sorted, it cut every window after the first at one early frame."""
    import decord

    from bindsearch.media.video import read_frames, window_times

    path = write_numbered_video(tmp_path / "clip.mp4", "libx264", 120, {"g": "24"})
    stamps = decord.VideoReader.get_frame_timestamp

    def unstamped(self, indices):
        got = stamps(self, indices).copy()
        got[missing] = -1.02e14
        return got

    monkeypatch.setattr(decord.VideoReader, "get_frame_timestamp", unstamped)
    window = (4.0, 8.0)
    assert frame_numbers(read_frames(path, 8, window)) == np.floor(window_times(window, 8) * 10 + 1e-6).astype(int
                                                                                                       ).tolist()


def test_new_video_extensions_and_mpeg_ts_told_from_typescript(tmp_path):
    for name in ("clip.MTS", "clip.m2ts", "phone.3gp"):
        assert media.guess_modality(tmp_path / name)[0] == "video"
    broadcast = write_numbered_video(tmp_path / "broadcast.ts", "mpeg2video", 10, {}, "mpegts")
    assert media.guess_modality(broadcast) == ("video", "MPEG-TS packets in a .ts file")
    source = tmp_path / "app.ts"
    source.write_text("export const answer: number = 42;\n" * 20)
    assert media.guess_modality(source) == (None, "a .ts file that is not MPEG-TS video")
    assert media.guess_modality(tmp_path / "missing.ts")[0] is None


def test_write_audio_writes_ogg_as_vorbis_and_leaves_no_empty_file_when_it_cannot(tmp_path):
    """Its docstring promised ogg, which 16-bit PCM cannot be; a format soundfile cannot write left a 0-byte file
    once the file was opened in Python (found by a review)."""
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert media.load("audio", write_audio(tmp_path / "a.ogg", wave, 16000)).shape == (3, 112, 1036)
    with pytest.raises(TypeError, match="format"):
        write_audio(tmp_path / "a.xyz", wave, 16000)
    assert not (tmp_path / "a.xyz").exists()
