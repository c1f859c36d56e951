"""Decode-once cache: images decoded and resized once, reused by the next run without decoding;
a change of preprocessing or of the file list makes a new entry; bad images are skipped or fail."""

from __future__ import annotations

import os

import numpy as np
import pytest
from omegaconf import OmegaConf

try:
    from tests.fakes import adience as fake_adience
    from tests.fakes import write_corrupt, write_image
except ImportError:  # pragma: no cover
    from fakes import adience as fake_adience
    from fakes import write_corrupt, write_image

import agebench.data.decode as decode
from agebench.data.decode import decode_images
from agebench.errors import UserError


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = decode.decode_one

    def counting(path, size, crop=None):
        calls.append(str(path))
        return real(path, size, crop)

    monkeypatch.setattr(decode, "decode_one", counting)
    return calls


def _images(tmp_path, n=6):
    return [write_image(tmp_path / "img" / f"{i}.jpg", seed=i, size=(40 + 4 * i, 30)) for i in range(n)]


def test_second_run_reuses_the_cache(tmp_path, count_decodes):
    paths, cache = _images(tmp_path), tmp_path / "cache"
    first = decode_images(paths, size=24, cache_dir=cache)
    assert not first.cache_hit and len(count_decodes) == len(paths)
    assert first.images.shape == (6, 24, 24, 3) and first.images.dtype == np.uint8 and first.kept.all()
    assert isinstance(first.images, np.memmap)
    count_decodes.clear()
    second = decode_images(paths, size=24, cache_dir=cache)
    assert second.cache_hit and count_decodes == []
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(second.images))
    assert len(list(cache.glob(".decode-*"))) == 0  # no temporary left behind


def test_changes_invalidate(tmp_path, count_decodes):
    paths, cache = _images(tmp_path), tmp_path / "cache"
    base = decode_images(paths, size=24, cache_dir=cache, preprocessing={"size": 24, "crop": None})
    count_decodes.clear()
    cropped = decode_images(paths, size=24, cache_dir=cache, preprocessing={"size": 24, "crop": 0.5})
    assert not cropped.cache_hit and len(count_decodes) == len(paths)
    assert not np.array_equal(np.asarray(base.images), np.asarray(cropped.images))
    assert not decode_images(paths, size=20, cache_dir=cache).cache_hit                 # another size
    assert not decode_images(paths[:-1], size=24, cache_dir=cache).cache_hit            # file list
    extra = write_image(tmp_path / "img" / "extra.jpg", seed=99)
    assert not decode_images([*paths, extra], size=24, cache_dir=cache).cache_hit
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))               # touched file
    count_decodes.clear()
    touched = decode_images(paths, size=24, cache_dir=cache, preprocessing={"size": 24, "crop": None})
    assert not touched.cache_hit and len(count_decodes) == len(paths)


def test_resize_and_crop_content(tmp_path):
    from PIL import Image

    left_red = np.zeros((20, 40, 3), np.uint8)
    left_red[:, :20] = (255, 0, 0)
    left_red[:, 20:] = (0, 0, 255)
    path = tmp_path / "half.png"
    Image.fromarray(left_red).save(path)
    centre = decode.decode_one(path, 10)                  # centre 20x20 square: half red, half blue
    assert centre.shape == (10, 10, 3)
    assert centre[5, 0, 0] > 200 and centre[5, -1, 2] > 200
    squash = decode.decode_one(path, 10, "squash")
    assert squash[5, 0, 0] > 200 and squash[5, -1, 2] > 200
    tight = decode.decode_one(path, 10, 0.5)              # centre 10x10 of the 20x20 square
    assert tight[5, 0, 0] > 200 and tight[5, -1, 2] > 200
    with pytest.raises(UserError):
        decode_images([path], size=8, cache_dir=tmp_path / "c", preprocessing={"crop": 1.5})


def test_large_jpeg_uses_draft_but_keeps_size(tmp_path):
    path = write_image(tmp_path / "big.jpg", seed=1, size=(800, 600))
    out = decode.decode_one(path, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_bad_images_skipped_or_fail(tmp_path, caplog):
    paths = _images(tmp_path, n=4)
    bad = write_corrupt(tmp_path / "img" / "bad.jpg")
    gone = tmp_path / "img" / "gone.jpg"
    everything = [paths[0], bad, paths[1], gone, paths[2], paths[3]]
    cache = tmp_path / "cache"
    with caplog.at_level("WARNING"):
        result = decode_images(everything, size=16, cache_dir=cache)
    assert result.kept.tolist() == [True, False, True, False, True, True]
    assert result.images.shape[0] == 4
    table = result.skipped_table()
    assert table["reason"].tolist() == ["unreadable or corrupt image", "missing image file"]
    assert table["detail"].tolist() == [str(bad), str(gone)]
    assert "2 of 6 images could not be used" in caplog.text and str(bad) in caplog.text
    # kept rows stay in order: row 1 of the array is paths[1]
    alone = decode_images([paths[1]], size=16, cache_dir=cache)
    np.testing.assert_array_equal(np.asarray(result.images[1]), np.asarray(alone.images[0]))
    # the second run knows which files were bad without decoding them
    again = decode_images(everything, size=16, cache_dir=cache)
    assert again.cache_hit and again.kept.tolist() == result.kept.tolist()
    with pytest.raises(UserError) as err:
        decode_images(everything, size=16, cache_dir=cache, on_bad_image="fail")
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "on_bad_image=skip" in message
    with pytest.raises(UserError) as err:
        decode_images([bad, gone], size=16, cache_dir=cache)
    assert "no image could be read" in str(err.value)
    with pytest.raises(UserError):
        decode_images(paths, size=16, cache_dir=cache, on_bad_image="ignore")


def test_load_dataset_adience_fake(tmp_path, count_decodes):
    """loading.load_dataset end to end on the fake Adience copy: bad images dropped from the records,
    the second load (a new process, simulated by clearing the per-process memo) decodes nothing."""
    from agebench.data.loading import clear_loaded, load_dataset

    root = fake_adience.make_adience(tmp_path / "adience", corrupt=("100_a_o.jpg",), missing=("300_a_o.jpg",))
    cfg = OmegaConf.merge(OmegaConf.load(os.path.join(os.path.dirname(decode.__file__), "..", "..", "conf", "data", "adience.yaml")),
                          {"root": str(root), "image_size": 24, "load_size": 28})
    cache = tmp_path / "cache"
    clear_loaded()
    try:
        first = load_dataset(cfg, cache)
        expected = fake_adience.EXPECTED["drop"]["records"] - 2
        assert len(first.records) == expected and first.images.shape == (expected, 28, 28, 3)
        assert {"unreadable or corrupt image", "missing image file"} <= set(first.skipped["reason"])
        assert first.native_age_bins.name == "adience8"
        n_first = len(count_decodes)
        assert n_first == fake_adience.EXPECTED["drop"]["records"] - 1   # the missing file is never opened
        clear_loaded()
        count_decodes.clear()
        second = load_dataset(cfg, cache)
        assert count_decodes == [] and len(second.records) == expected
    finally:
        clear_loaded()


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    """Issue 26 (7): a small PNG claiming 13000×13000 pixels decoded in full (3.4 GB for four). The header is
    read first and the file is skipped with its reason, nothing decoded."""
    import resource
    import struct
    import zlib

    from agebench.data.decode import MAX_PIXELS, OK, TOO_LARGE, try_decode

    def png(path, width, height):
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        raw = zlib.compress(b"\x00" * (width * 3 + 1) * 2)  # only two rows of data: the rest is claimed, not sent
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                         + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
        return path

    assert 13000 * 13000 > MAX_PIXELS
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, image = try_decode(png(tmp_path / "bomb.png", 13000, 13000), 32, None)
    assert (status, image) == (TOO_LARGE, None)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing big was decoded
    assert try_decode(png(tmp_path / "fine.png", 64, 2), 32, None)[0] == OK
