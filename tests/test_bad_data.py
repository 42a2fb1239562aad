"""Bad data: a damaged sample is skipped, counted and reported, and training goes on; a shard
with nothing readable, or an empty dataset, is one clear error naming the file."""

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
import yaml
from conftest import ganpipe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.data import shards
from pipeline.data.reader import training_batches
from pipeline.errors import UserError

SHARD = 100  # samples per PNG shard
TRAIN = 1437  # digits in the training split


@pytest.fixture(scope="module")
def png_digits(tmp_path_factory):
    """Digits at 8 px, one PNG per tar member (the layout of large images)."""
    out = tmp_path_factory.mktemp("png-digits")
    original = shards.RAW_UP_TO
    shards.RAW_UP_TO = 0
    try:
        shards.build("digits", out, resolution=8, shard_size=SHARD)
    finally:
        shards.RAW_UP_TO = original
    return out


@pytest.fixture(scope="module")
def raw_digits(tmp_path_factory):
    """Digits at 8 px, stored as blocks of 100 raw images, two blocks per shard."""
    out = tmp_path_factory.mktemp("raw-digits")
    shards.build("digits", out, resolution=8, shard_size=2 * SHARD)
    return out


def copy_of(data, tmp_path):
    return shutil.copytree(data, tmp_path / "data")


def rewrite(shard, change):
    """Rewrite a tar shard, passing each record through `change` (None drops it)."""
    records = list(wds.tarfile_samples([{"url": str(shard)}]))
    with wds.TarWriter(str(shard)) as sink:
        for record in records:
            record = change({k: v for k, v in record.items() if not k.startswith("__url")})
            if record is not None:
                sink.write(record)


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def read_passes(data, good_per_pass: int, passes: int = 2, **options):
    """Exactly `passes` passes over the readable training samples (one reader, no shuffle
    buffer, a batch size that divides a pass): every bad sample is met once per pass."""
    batch = max(d for d in range(1, 33) if good_per_pass % d == 0)
    stream = training_batches(data, batch, seed=0, shuffle_buffer=0, **options)
    taken = [next(stream) for _ in range(passes * good_per_pass // batch)]
    return taken, sum(stream.skipped.values())


def read_some(data, **options):
    stream = training_batches(data, 96, seed=0, shuffle_buffer=0, **options)
    taken = [next(stream) for _ in range(30)]  # two passes
    return taken, sum(stream.skipped.values())


def spoil_png_records(record):
    key = int(record["__key__"])
    if key == 0:
        record["png"] = b"not a png at all"  # unreadable
    elif key == 1:
        record["png"] = record["png"][:45]  # the header reads, the pixels do not
    elif key == 2:
        record["png"] = png(np.zeros((8, 8, 3), np.uint8))  # RGB where the data is grey
    elif key == 3:
        del record["cls"]  # no label
    elif key == 4:
        record["png"] = png(np.zeros((16, 16), np.uint8))  # another resolution
    return record


def test_damaged_images_are_skipped_counted_and_reported(png_digits, tmp_path, capfd):
    data = copy_of(png_digits, tmp_path)
    rewrite(data / "train-00000.tar", spoil_png_records)
    batches, skipped = read_passes(data, TRAIN - 5)
    assert all(b.x.shape[1:] == (1, 8, 8) for b in batches)
    assert skipped == 2 * 5  # five bad samples, met once per pass
    printed = capfd.readouterr().err
    assert "data: skipped 1 sample(s) of train-00000.tar (record 00000000): not an image" in printed
    assert "an image of [3, 8, 8] (RGB), index.json says [1, 8, 8]" in printed
    assert "no label (.cls)" in printed
    assert "corrupt image data (image file is truncated)" in printed
    assert "further problems are counted (data/skipped), not printed" in printed


def test_damaged_blocks_are_skipped_and_counted(raw_digits, tmp_path, capfd):
    data = copy_of(raw_digits, tmp_path)

    def spoil(record):  # the shard's first block of 100 loses its labels
        if record["__key__"] == "00000400":
            del record["labels.npy"]
        return record

    rewrite(data / "train-00002.tar", spoil)
    batches, skipped = read_passes(data, TRAIN - SHARD)
    assert skipped == 2 * SHARD
    assert "train-00002.tar (record 00000400): no labels.npy" in capfd.readouterr().err


def test_a_truncated_tar_loses_only_what_is_cut_off(png_digits, tmp_path, capfd):
    data = copy_of(png_digits, tmp_path)
    shard = data / "train-00005.tar"
    os.truncate(shard, shard.stat().st_size // 2)
    records = wds.tarfile_samples([{"url": str(shard)}], handler=lambda err: True)
    whole = sum(1 for r in records if "png" in r and "cls" in r)
    assert 0 < whole < SHARD
    _, skipped = read_passes(data, TRAIN - (SHARD - whole))
    assert skipped == 2 * (SHARD - whole)
    assert f"fewer samples than index.json lists: {whole} of {SHARD} read" in capfd.readouterr().err
    _, skipped = read_some(data, workers=2)  # the same from loader workers
    assert skipped >= SHARD - whole


@pytest.mark.parametrize("workers", [0, 2])
def test_a_shard_with_nothing_readable_is_one_error_naming_it(raw_digits, tmp_path, workers):
    data = copy_of(raw_digits, tmp_path)

    def other_shape(record):
        record["images.npy"] = shards._npy(np.zeros((SHARD, 3, 8, 8), np.uint8))
        return record

    rewrite(data / "train-00003.tar", other_shape)
    with pytest.raises(UserError) as err:
        read_some(data, workers=workers)
    message = str(err.value)
    assert message.startswith(f"shard {data / 'train-00003.tar'}: none of its 200 samples")
    assert "samples of [3, 8, 8], index.json says [1, 8, 8]" in message
    assert "\n" not in message


def test_an_empty_dataset_is_one_clear_error(raw_digits, tmp_path):
    data = copy_of(raw_digits, tmp_path)
    index = json.loads((data / "index.json").read_text())
    index["splits"]["train"]["shards"] = []
    (data / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="index.json lists no train shards"):
        training_batches(data, 8, seed=0)


@pytest.mark.slow
def test_training_goes_on_over_bad_samples_and_logs_how_many(png_digits, tmp_path):
    data = copy_of(png_digits, tmp_path)
    rewrite(data / "train-00000.tar", spoil_png_records)
    config = tmp_path / "digits.yaml"
    settings = {
        "data": {"dir": str(data), "shape": [1, 8, 8]},
        "model": {"family": "dcgan", "width": 8, "d_width": 8},
        "train": {"steps": 40, "batch_size": 64, "log_every": 20, "eval_every": 10**6,
                  "sample_every": 10**6},
        "eval": {"n_samples": 200},
        "tracking": {"wandb": False},
    }  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    run = tmp_path / "run"
    done = ganpipe("train", "--config", config, "--run-dir", run)
    assert "data: skipped 1 sample(s) of train-00000.tar" in done.stderr
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = [entry["data/skipped"] for entry in logs if "data/skipped" in entry]
    assert skipped[-1] >= 5 and logs[-1]["step"] == 40


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    layout=st.sampled_from(["png", "raw"]),
    writes=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=40)), max_size=4),
    cut=st.floats(0.05, 1.0),
)
def test_any_damage_to_a_shard_gives_good_batches_or_one_clear_error(
    png_digits, raw_digits, layout, writes, cut
):
    """Random bytes written over a shard, and the shard cut short: whatever comes out of the
    stream is well-formed, and nothing but a one-line UserError ever escapes it."""
    with tempfile.TemporaryDirectory() as folder:
        data = shutil.copytree(png_digits if layout == "png" else raw_digits, Path(folder) / "d")
        shard = data / "train-00001.tar"
        content = bytearray(shard.read_bytes())
        for where, junk in writes:
            start = int(where * (len(content) - 1))
            content[start : start + len(junk)] = junk
        shard.write_bytes(bytes(content[: max(1, int(cut * len(content)))]))
        try:
            stream = training_batches(data, 64, seed=0, shuffle_buffer=0)
            for _ in range(25):  # past the first pass: the damaged shard is read
                batch = next(stream)
                assert batch.x.shape == (64, 1, 8, 8) and batch.x.abs().max() <= 1
                assert batch.y.dtype == torch.int64 and 0 <= batch.y.min() <= batch.y.max() < 10
        except UserError as err:
            assert "\n" not in str(err) and "train-00001.tar" in str(err)
