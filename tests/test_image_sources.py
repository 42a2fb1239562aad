"""The image sources users bring, fabricated tiny in each format."""

import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.images import to_square
from pipeline.data.reader import load_split
from pipeline.data.shards import build
from pipeline.errors import UserError


def save_image(path, size, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_with_classes(tmp_path):
    save_image(tmp_path / "in" / "cats" / "a.png", (40, 20), (255, 0, 0))
    save_image(tmp_path / "in" / "cats" / "b.jpg", (16, 16), (250, 0, 0))
    save_image(tmp_path / "in" / "dogs" / "sub" / "c.png", (10, 30), (0, 0, 255))
    (tmp_path / "in" / "dogs" / "notes.txt").write_text("not an image")
    index = build("image-folder", tmp_path / "out", path=tmp_path / "in", resolution=8)
    assert index["shape"] == [3, 8, 8] and index["classes"] == 2
    assert index["class_names"] == ["cats", "dogs"] and "lanczos" in index["resize"]
    x, y = load_split(tmp_path / "out", "train")
    assert x.shape == (3, 3, 8, 8) and y.tolist() == [0, 0, 1]
    assert x[0, 0].min() > 0.9 and x[2, 2].min() > 0.9  # red cat, blue dog, in [-1, 1]


def test_unlabelled_folder_and_greyscale(tmp_path):
    for i in range(3):
        save_image(tmp_path / "in" / f"{i}.png", (12, 12), (i * 100, i * 100, i * 100))
    index = build("image-folder", tmp_path / "out", path=tmp_path / "in", resolution=4, channels=1)
    assert index["shape"] == [1, 4, 4] and index["classes"] == 0
    x, _ = load_split(tmp_path / "out", "train")
    assert x.shape == (3, 1, 4, 4)


def test_empty_or_missing_folder_is_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build("image-folder", tmp_path / "out", path=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images .* found under"):
        build("image-folder", tmp_path / "out", path=tmp_path / "empty")


def test_square_crop_keeps_the_centre():
    image = Image.new("L", (30, 10), 0)
    image.paste(255, (10, 0, 20, 10))  # a white centre third
    square = np.asarray(to_square(image, 10, "L"))
    assert square.shape == (10, 10) and square.min() == 255


def cifar_archive(path, per_batch=4):
    """The official layout: cifar-10-batches-py/ with Python-2-style pickled dicts."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        contents = {
            name: {
                b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                b"labels": list(range(per_batch)),
            }
            for name in names
        }
        contents["batches.meta"] = {b"label_names": [b"airplane", b"automobile"] + [b"x"] * 8}
        for name, value in contents.items():
            data = pickle.dumps(value, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return contents


def test_cifar10_archive(tmp_path):
    contents = cifar_archive(tmp_path / "c.tar.gz")
    index = build("cifar10", tmp_path / "out", path=tmp_path / "c.tar.gz")
    assert index["splits"]["train"]["samples"] == 20 and index["splits"]["test"]["samples"] == 4
    assert index["class_names"][:2] == ["airplane", "automobile"]
    x, y = load_split(tmp_path / "out", "test")
    expected = contents["test_batch"][b"data"][1].reshape(3, 32, 32)  # rows are channel-major
    pixels = ((x[1] + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(pixels, torch.from_numpy(expected))  # stored losslessly, CHW order kept
    assert y.tolist() == [0, 1, 2, 3]


def test_cifar10_archive_carrying_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = pickle.dumps({b"data": Evil()})
        for name in ["batches.meta", "data_batch_1"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="not the CIFAR-10 python archive .*refusing to load"):
        build("cifar10", tmp_path / "out", path=path)


@pytest.mark.parametrize(
    ("images", "channels"),
    [
        (np.zeros((5, 6, 6), np.uint8), 1),  # N H W
        (np.zeros((5, 6, 6, 3), np.uint8), 3),  # N H W C
        (np.zeros((5, 3, 6, 6), np.float32) - 1.0, 3),  # N C H W in [-1, 1]
    ],
)
def test_npz_layouts(tmp_path, images, channels):
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(5) % 2)
    index = build("npz", tmp_path / "out", path=tmp_path / "d.npz", resolution=6, channels=channels)
    assert index["classes"] == 2 and index["shape"] == [channels, 6, 6]
    x, y = load_split(tmp_path / "out", "train")
    assert x.shape == (5, channels, 6, 6) and x.max() == -1.0 and y.tolist() == [0, 1, 0, 1, 0]


def test_npz_errors_name_the_file(tmp_path):
    np.savez(tmp_path / "d.npz", pictures=np.zeros((2, 4, 4)))
    with pytest.raises(UserError, match=r"d.npz: no 'images' array \(found: pictures\)"):
        build("npz", tmp_path / "out", path=tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", images=np.zeros((2, 4, 4, 5), np.uint8))
    with pytest.raises(UserError, match="e.npz: images of shape"):
        build("npz", tmp_path / "out", path=tmp_path / "e.npz")


def test_large_sets_are_encoded_in_parallel_in_order(tmp_path):
    n = 2100  # above the threshold where worker processes pay
    pixels = (np.arange(n) % 256).astype(np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    np.savez(tmp_path / "big.npz", images=pixels)
    build("npz", tmp_path / "out", path=tmp_path / "big.npz", resolution=4, channels=1, workers=2)
    x, _ = load_split(tmp_path / "out", "train")
    restored = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()
    assert torch.equal(restored, torch.arange(n) % 256)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert sum(s["samples"] for s in index["splits"]["train"]["shards"]) == n
