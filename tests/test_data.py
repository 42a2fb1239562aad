import json

import numpy as np
import pytest
import torch

from pipeline.config import AugmentConfig
from pipeline.data import shards
from pipeline.data.reader import evaluation_batches, load_split, training_batches
from pipeline.data.shards import build, sha256
from pipeline.errors import UserError


def test_digits_index_describes_the_shards(digits16):
    index = json.loads((digits16 / "index.json").read_text())
    assert index["kind"] == "image" and index["shape"] == [1, 16, 16] and index["classes"] == 10
    assert index["splits"]["train"]["samples"] + index["splits"]["test"]["samples"] == 1797
    for split in index["splits"].values():
        assert sum(s["samples"] for s in split["shards"]) == split["samples"]
        for shard in split["shards"]:
            assert sha256(digits16 / shard["name"]) == shard["sha256"]


def test_small_images_are_stored_raw_and_read_back_as_their_png_would(tmp_path, monkeypatch):
    raw = build("digits", tmp_path / "raw", resolution=16, shard_size=250)
    test_shards = raw["splits"]["test"]["shards"]
    assert raw["layout"] == "raw" and [s["samples"] for s in test_shards] == [250, 110]
    again = build("digits", tmp_path / "again", resolution=16, shard_size=250)
    assert again["splits"] == raw["splits"]  # byte-identical shards: the build is reproducible
    rgb = {"resolution": 8, "n_train": 300, "n_test": 100}
    build("stacked-digits", tmp_path / "rgb-raw", **rgb)
    monkeypatch.setattr(shards, "RAW_UP_TO", 0)
    assert build("digits", tmp_path / "png", resolution=16, shard_size=250)["layout"] == "png"
    build("stacked-digits", tmp_path / "rgb-png", **rgb)
    for stored, png in (("raw", "png"), ("rgb-raw", "rgb-png")):
        for split in ("train", "test"):
            x_raw, y_raw = load_split(tmp_path / stored, split)
            x_png, y_png = load_split(tmp_path / png, split)
            assert torch.equal(x_raw, x_png) and torch.equal(y_raw, y_png)
        streams = [training_batches(tmp_path / d, 32, seed=3) for d in (stored, png)]
        for _ in range(5):
            a, b = (next(s) for s in streams)
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.shards == b.shards


def test_images_are_scaled_to_minus_one_one_with_every_class(digits16):
    x, y = load_split(digits16, "test")
    assert x.shape == (360, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert torch.bincount(y).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]  # stratified


def test_ranks_read_disjoint_shards_that_cover_the_split(digits16):
    seen = []
    for rank in range(2):
        stream = training_batches(digits16, 32, seed=0, rank=rank, world=2, shuffle_buffer=50)
        shards = set()
        for _ in range(60):  # more than one pass over this rank's shards
            shards |= next(stream).shards
        seen.append(shards)
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 8


def test_training_stream_is_seeded(digits16):
    def first(seed):
        return next(training_batches(digits16, 16, seed=seed, shuffle_buffer=100)).y

    assert torch.equal(first(1), first(1))
    assert not torch.equal(first(1), first(2))


def test_loader_workers_split_shards(digits16):
    stream = training_batches(digits16, 32, seed=0, workers=2, shuffle_buffer=10)
    batches = [next(stream) for _ in range(50)]
    assert {len(b.x) for b in batches} == {32}
    assert len(set().union(*(b.shards for b in batches))) == 8


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_goes_on_with_exactly_the_batches_it_would_have_given(digits16, workers):
    options = {"seed": 5, "shuffle_buffer": 50, "workers": workers,
               "augment": AugmentConfig(flip=True, rotate=10.0)}  # fmt: skip
    stream = training_batches(digits16, 32, **options)
    for _ in range(7):  # odd: with two workers, the next batch comes from the second
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(40)]  # past the end of every reader's pass
    assert max(b.position[0] for b in expected) == 1
    resumed = training_batches(digits16, 32, state=state, **options)
    for want in expected:
        got = next(resumed)
        assert torch.equal(got.x, want.x) and torch.equal(got.y, want.y)
    fresh = training_batches(digits16, 32, **options)
    assert not torch.equal(next(fresh).x, expected[0].x)


def test_evaluation_pass_is_finite_and_ordered(digits16):
    labels = [b.y for b in evaluation_batches(digits16, 100)]
    assert [len(y) for y in labels] == [100, 100, 100, 60]
    again = torch.cat([b.y for b in evaluation_batches(digits16, 100)])
    assert torch.equal(torch.cat(labels), again)


def test_a_pass_gives_every_sample_once_shuffled_across_shards(ring):
    stored = torch.cat([b.x for b in evaluation_batches(ring, 1000, "train")])  # 8 shards
    stream = training_batches(ring, 500, seed=3, shuffle_buffer=2000)
    first_pass = [next(stream) for _ in range(len(stored) // 500)]
    assert {b.position[0] for b in first_pass} == {0} and first_pass[-1].position == (0, 8000)
    shuffled = torch.cat([b.x for b in first_pass])
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, stored.tolist()))
    assert all(len(b.shards) > 1 for b in first_pass)  # windows mix two shards' samples
    assert not torch.equal(next(stream).x, first_pass[0].x)  # the next pass, in a new order


def test_mixture_points(ring):
    index = json.loads((ring / "index.json").read_text())
    assert index["kind"] == "points" and index["classes"] == 8
    means = np.asarray(index["mixture"]["means"])
    assert len({tuple(np.round(m, 6)) for m in means}) == 8  # no repeated mean
    batch = next(training_batches(ring, 256, seed=0))
    assert batch.x.shape == (256, 2)
    distance = torch.cdist(batch.x.double(), torch.tensor(means)).min(1).values
    assert distance.max() < 0.06  # std 0.01: every point sits on a ring mean


def test_grid_has_25_means(tmp_path):
    index = build("mog-grid", tmp_path, n_train=1000, n_test=100)
    assert len(index["mixture"]["means"]) == 25 and index["mixture"]["std"] == 0.05


def test_missing_data_directory_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no dataset at .*ganpipe data build digits"):
        training_batches(tmp_path / "missing", 8, seed=0)


def test_missing_shard_is_named(tmp_path):
    build("mog-ring", tmp_path, n_train=1000, n_test=100)
    (tmp_path / "train-00000.tar").unlink()
    with pytest.raises(UserError, match="train-00000.tar listed in index.json is missing"):
        training_batches(tmp_path, 8, seed=0)


def test_more_readers_than_shards_is_refused(tmp_path):
    build("mog-ring", tmp_path, n_train=1000, n_test=100, shard_size=1000)
    with pytest.raises(UserError, match="1 train shards, fewer than processes x loader workers"):
        training_batches(tmp_path, 8, seed=0, world=2)


def test_stacked_digits_hold_three_digits_the_classifier_reads_back(tmp_path):
    from pipeline.metrics.evaluate import measure

    index = build("stacked-digits", tmp_path, resolution=8, n_train=400, n_test=2000)
    assert index["classes"] == 1000 and index["shape"] == [3, 8, 8]
    images, labels = load_split(tmp_path, "test")
    assert images.shape == (2000, 3, 8, 8) and labels.max() < 1000
    result = measure(images, None, tmp_path)
    assert result["modes"] == pytest.approx(len(labels.unique()), abs=40)  # 1% misreads
    assert result["modes"] > 800 and result["reverse_kl"] < 0.5  # 2000 draws of 1000 triples
    collapsed = measure(images[:1].expand(500, -1, -1, -1), None, tmp_path)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(np.log(1000))
