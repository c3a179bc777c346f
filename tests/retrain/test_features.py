from __future__ import annotations

from pathlib import Path

import numpy as np

from modhub.format.manifest import read_manifest
from modhub.retrain.features import FeatureCache, extract_features, module_key


def _compute(calls: list[list[int]]):  # type: ignore[no-untyped-def]
    def compute(indices: list[int]) -> np.ndarray:
        calls.append(indices)
        return np.array([[float(i), float(i) * 2] for i in indices], dtype=np.float32)

    return compute


def test_second_pass_reads_everything_from_the_cache(tmp_path: Path) -> None:
    keys = ["a", "b", "c", "a", "d"]  # "a" twice: computed once
    calls: list[list[int]] = []
    cache = FeatureCache(tmp_path, "m1")
    features, computed = extract_features(keys, _compute(calls), cache, batch_size=2)
    assert computed == 4 and calls == [[0, 1], [2, 4]]
    assert features.shape == (5, 2) and features[3].tolist() == features[0].tolist() == [0.0, 0.0]
    assert (cache.hits, cache.misses) == (0, 4)

    again = FeatureCache(tmp_path, "m1")  # a later run: a fresh process sees the shards
    calls.clear()
    features2, computed2 = extract_features(keys, _compute(calls), again, batch_size=2)
    assert computed2 == 0 and calls == []
    assert (again.hits, again.misses) == (4, 0)
    np.testing.assert_array_equal(features, features2)
    assert not list((tmp_path / "m1").glob(".*")), "no temp files left behind"


def test_only_new_examples_are_computed_and_modules_do_not_share(tmp_path: Path) -> None:
    calls: list[list[int]] = []
    extract_features(["a", "b"], _compute(calls), FeatureCache(tmp_path, "m1"), batch_size=8)
    calls.clear()
    extract_features(["b", "c", "a"], _compute(calls), FeatureCache(tmp_path, "m1"), batch_size=8)
    assert calls == [[1]]
    calls.clear()
    extract_features(["a"], _compute(calls), FeatureCache(tmp_path, "m2"), batch_size=8)
    assert calls == [[0]]


def test_a_damaged_shard_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    calls: list[list[int]] = []
    extract_features(["a", "b"], _compute(calls), FeatureCache(tmp_path, "m"), batch_size=8)
    for shard in (tmp_path / "m").glob("*.safetensors"):
        shard.write_bytes(b"garbage")
    calls.clear()
    features, computed = extract_features(
        ["a", "b"], _compute(calls), FeatureCache(tmp_path, "m"), batch_size=8
    )
    assert computed == 2 and features.shape == (2, 2)


def test_module_key_covers_module_files_and_preprocessing(feature_module: Path, text_module: Path) -> None:
    feature, text = read_manifest(feature_module), read_manifest(text_module)
    key = module_key(feature, {"height": 32})
    assert key == module_key(feature, {"height": 32})
    assert key != module_key(feature, {"height": 64})
    assert key != module_key(text, {"height": 32})
