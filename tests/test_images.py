"""Image decoding for real data sets: PNGs through libspng give OpenCV's pixels in every PNG mode; a pixel limit
checked from the header; a cache bounded in bytes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iapo_gym.envs import images
from PIL import Image


def _opencv_rgb(path: Path) -> np.ndarray:
    """What the decoder must give: OpenCV's decode, made RGB the way the module documents it."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] in (2, 4):
        colour = (
            cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
            if img.shape[2] == 2
            else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
        )
        alpha = img[:, :, -1:].astype(np.float32) / 255.0
        return (colour.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "I;16", "1"]), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31)
)
def test_png_decoding_matches_opencv_in_every_mode(
    tmp_path_factory: pytest.TempPathFactory, mode: str, w: int, h: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    path = tmp_path_factory.mktemp("png") / f"x-{seed}.png"
    image.save(path)
    images.clear_cache()
    got = images.load_image(str(path))
    assert got.dtype == np.uint8 and got.shape == (h, w, 3) and not got.flags.writeable
    assert np.array_equal(got, _opencv_rgb(path))


def test_the_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (3000, 2000), 255).save(path)
    with pytest.raises(ValueError, match=r"3000 x 2000 = 6,000,000 pixels exceeds the limit of 1,000,000 \(max_pixels=\)"):
        images.load_image(str(path), max_pixels=1_000_000)
    assert images.load_image(str(path)).shape == (2000, 3000, 3)


def test_corrupt_and_missing_files_name_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match="bad.png"):
        images.load_image(str(bad))
    with pytest.raises(ValueError, match="cannot read image .*nope.png"):
        images.load_image(str(tmp_path / "nope.png"))


def test_the_cache_is_bounded_in_bytes_and_rereads_a_changed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images.clear_cache()
    monkeypatch.setattr(images, "CACHE_BYTES", 3 * 100 * 100 * 3)  # room for three 100 x 100 images
    paths = []
    for k in range(5):
        paths.append(tmp_path / f"{k}.png")
        cv2.imwrite(str(paths[-1]), np.full((100, 100, 3), k, np.uint8))
    first = images.load_image(str(paths[0]))
    assert images.load_image(str(paths[0])) is first  # cached
    for p in paths[1:]:
        images.load_image(str(p))
    assert images.load_image(str(paths[0])) is not first  # evicted: three images fit
    cv2.imwrite(str(paths[4]), np.full((100, 120, 3), 9, np.uint8))
    assert images.load_image(str(paths[4])).shape == (100, 120, 3)  # changed on disk: read again
    images.clear_cache()
