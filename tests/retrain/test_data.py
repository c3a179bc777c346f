from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modhub.errors import InputError
from modhub.retrain.data import decode_image, read_image_folder, read_text_csv, stratified_split
from tests.retrain.conftest import write_photos, write_text_csv


def test_image_folder_classes_sorted_and_every_mode_read(photo_dir: Path) -> None:
    data = read_image_folder(photo_dir)
    assert data.classes == ["blue", "green", "red"]
    assert data.counts() == {"blue": 8, "green": 8, "red": 8}
    assert data.skipped == []
    assert {ex.path.suffix for ex in data.examples if ex.path} == {".jpg", ".png"}
    assert all(ex.name.split("/")[0] == data.classes[ex.label] for ex in data.examples)


def test_unreadable_files_are_skipped_and_listed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_photos(tmp_path / "data", per_class=3)
    (root / "red" / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = (root / "blue" / "00.jpg").read_bytes()
    (root / "blue" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "blue" / "notes.txt").write_text("ignored: not a photo suffix")
    (root / "green" / ".hidden.png").write_bytes(b"ignored: hidden")
    with caplog.at_level("WARNING", logger="modhub.retrain"):
        data = read_image_folder(root)
    assert sorted(s.split(":")[0] for s in data.skipped) == ["blue/truncated.jpg", "red/broken.jpg"]
    assert str(tmp_path) not in " ".join(data.skipped)  # paths inside the data folder only
    assert data.counts() == {"blue": 3, "green": 3, "red": 3}
    assert "red/broken.jpg" in caplog.text


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "data", per_class=3)
    (root / "zebra").mkdir()
    (root / "zebra" / "broken.png").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"class folder\(s\) without readable photos.*zebra"):
        read_image_folder(root)


def test_single_class_is_refused(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "data", per_class=3)
    shutil.rmtree(root / "blue")
    shutil.rmtree(root / "green")
    with pytest.raises(InputError, match=r"at least 2 classes.*only 'red'"):
        read_image_folder(root)


def test_photos_without_class_folders(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match=r"no class sub-folders \(found 1 photo"):
        read_image_folder(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        read_image_folder(tmp_path / "missing")


def test_a_class_needs_two_examples(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "data", per_class=2)
    next((root / "red").glob("01.*")).unlink()
    with pytest.raises(InputError, match=r"at least 2 examples.*'red' \(1\)"):
        read_image_folder(root)


def test_decode_composites_transparency_on_white_and_crops_centre(tmp_path: Path) -> None:
    rgba = np.zeros((20, 40, 4), dtype=np.uint8)
    rgba[:, 15:25] = (255, 0, 0, 255)  # opaque red stripe in the middle, transparent elsewhere
    buffer = tmp_path / "x.png"
    Image.fromarray(rgba, "RGBA").save(buffer)
    pixels = decode_image(buffer.read_bytes(), 10, 10)
    assert pixels.shape == (3, 10, 10) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    # Shorter side 20 -> 10, width 40 -> 20, centre crop keeps columns 5..15 of 20: the stripe is 7.5..12.5.
    assert np.allclose(pixels[:, :, 0], 1.0)  # white background left
    assert np.allclose(pixels[:, 5, 5], (1.0, 0.0, 0.0), atol=0.02)  # red in the centre
    grey = tmp_path / "g.png"
    Image.new("L", (5, 5), 128).save(grey)
    assert np.allclose(decode_image(grey.read_bytes(), 4, 4), 128 / 255)


def test_stratified_split_is_seeded_disjoint_and_covers_every_class() -> None:
    labels = [0] * 10 + [1] * 5 + [2] * 2
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(len(labels)))
    assert set(train).isdisjoint(val)
    assert sorted(labels[i] for i in val) == [0, 0, 1, 2]
    assert {labels[i] for i in train} == {0, 1, 2}
    assert stratified_split(labels, 0.2, seed=3) == (train, val)
    assert stratified_split(labels, 0.2, seed=4) != (train, val)
    with pytest.raises(InputError, match="between 0 and 1"):
        stratified_split(labels, 1.0, seed=0)


def test_text_csv(tmp_path: Path) -> None:
    path = write_text_csv(tmp_path / "t.csv", per_class=4, delimiter=";")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("99;;animal\n")
    data = read_text_csv(path, text_column="sentence", label_column="topic")
    assert data.classes == ["animal", "vehicle"]
    assert data.counts() == {"animal": 4, "vehicle": 4}
    assert data.skipped == ["row 10: empty text"]
    assert all(ex.text for ex in data.examples)


def test_text_csv_without_the_named_columns(tmp_path: Path) -> None:
    path = write_text_csv(tmp_path / "t.csv", per_class=2)
    with pytest.raises(
        InputError, match="no column\\(s\\) 'text', 'label'; its columns are 'id', 'sentence', 'topic'"
    ):
        read_text_csv(path)
    with pytest.raises(InputError, match="--label-column"):
        read_text_csv(path, text_column="sentence", label_column="sentiment")


def test_text_csv_single_class(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("text,label\nhello,a\nworld,a\n", encoding="utf-8")
    with pytest.raises(InputError, match="at least 2 classes"):
        read_text_csv(path)
