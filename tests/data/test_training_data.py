"""Training data: digits label mapping and subsets, image folders and their errors (bad-inputs row 31)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.data import augment_batch, digit_classes, load_training_data
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import Preprocessing

PREP = Preprocessing(input_size=(16, 16))


def _write_png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((10, 12, 3), value, dtype=np.uint8)
    arr[2:5, 3:7] = 255 - value
    Image.fromarray(arr).save(path)


def make_folder(root: Path, classes: dict[str, int], *, splits: tuple[str, ...] = ()) -> Path:
    """``classes``: name -> number of images; with ``splits``, one tree per split."""
    for split in splits or ("",):
        for c, (name, count) in enumerate(classes.items()):
            for i in range(count):
                _write_png(root / split / name / f"{i}.png", 20 * c + i)
    return root


def test_digits_labels_follow_the_models_class_names() -> None:
    names = ("3", "0", "1", "2")  # the model's order, not the digits' order
    data = load_training_data("digits", PREP, names)
    assert data.train[0].shape[1:] == (3, 16, 16)
    assert set(data.train[1].tolist()) == {0, 1, 2, 3}
    from toolkit.data.digits import digits_uint8

    _, raw = digits_uint8("train", [0, 1, 2, 3])
    expected = torch.tensor([names.index(str(d)) for d in raw.tolist()])
    assert torch.equal(data.train[1], expected)
    assert data.test is not None and len(data.test[1]) > 0
    assert data.augment == "shift"


def test_digits_subset_and_default_names() -> None:
    data = load_training_data("digits", PREP, [f"class_{i}" for i in range(10)], digits=[7, 9])
    assert set(data.train[1].tolist()) == {7, 9}
    assert data.source == "digits[7,9]"
    with pytest.raises(DataError, match=r"digit\(s\) 8, 9 have no class"):
        load_training_data("digits", PREP, [str(d) for d in range(7)], digits=[0, 8, 9])
    with pytest.raises(DataError, match="class names are digits"):
        digit_classes(["cat", "dog"])
    with pytest.raises(InvalidArgumentError):
        load_training_data("digits", PREP, [str(d) for d in range(10)], digits=[11])


def test_folder_with_train_val_test(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"b": 3, "a": 2}, splits=("train", "val", "test"))
    data = load_training_data(root, PREP, ["b", "a"])
    assert data.train[0].shape == (5, 3, 16, 16)
    assert data.train[1].tolist() == [0, 0, 0, 1, 1]  # labels follow the model's order (b, a)
    assert data.test is not None and len(data.test[1]) == 5
    assert data.augment == "shift-flip"


def test_single_folder_is_split_per_class_reproducibly(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 10, "b": 10})
    one = load_training_data(root, PREP, ["a", "b"], val_ratio=0.2, seed=1)
    two = load_training_data(root, PREP, ["a", "b"], val_ratio=0.2, seed=1)
    assert one.val[1].tolist() == [0, 0, 1, 1]
    assert len(one.train[1]) == 16 and one.test is None
    assert torch.equal(one.val[0], two.val[0])
    with pytest.raises(InvalidArgumentError, match="ratio"):
        load_training_data(root, PREP, ["a", "b"], val_ratio=1.5)


def test_folders_that_are_not_classes_are_refused_by_name(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2, "zebra": 2})
    with pytest.raises(DataError) as info:
        load_training_data(root, PREP, ["a", "b", "c"])
    text = info.value.one_line()
    assert "zebra are not classes of the model (1 of the 3 class folders" in text
    assert info.value.param == "data" and info.value.exit_code == 2


def test_many_unknown_folders_make_a_short_message(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 1, **{f"zebra{i:02d}": 1 for i in range(9)}})
    names = ["a", *(f"imagenet class number {i}" for i in range(999))]
    with pytest.raises(DataError) as info:
        load_training_data(root, PREP, names)
    text = info.value.one_line()
    # the classes the data leaves open: all but 'a', which a folder covers
    assert "zebra00, zebra01" in text and "(9 in all)" in text and "(999 in all)" in text
    assert "zebra08" not in text and len(text) < 600, len(text)


def test_a_subset_of_the_classes_is_labelled_with_the_models_indices(tmp_path: Path) -> None:
    names = ["cat", "dog", "new1", "new2"]
    split = make_folder(tmp_path / "s", {"new2": 2, "new1": 3}, splits=("train", "val"))
    data = load_training_data(split, PREP, names)
    assert data.train[1].tolist() == [2, 2, 2, 3, 3] and data.val[1].tolist() == [2, 2, 2, 3, 3]
    assert data.seen_classes() == (2, 3) and data.unseen_classes() == (0, 1)
    assert data.describe()["classes_unseen"] == 2
    one = load_training_data(make_folder(tmp_path / "o", {"new1": 10}), PREP, names, val_ratio=0.2)
    assert set(one.train[1].tolist()) == set(one.val[1].tolist()) == {2}
    assert one.unseen_classes() == (0, 1, 3)


def test_full_data_split_is_unchanged_by_subset_support(tmp_path: Path) -> None:
    """Every class present: the same images in the same order as before (model class order)."""
    root = make_folder(tmp_path / "d", {"a": 10, "b": 10})
    data = load_training_data(root, PREP, ["b", "a"], val_ratio=0.2, seed=3)
    assert data.seen_classes() == (0, 1) and data.unseen_classes() == ()
    gen = torch.Generator().manual_seed(3)
    order_b = torch.randperm(10, generator=gen).tolist()  # the model's first class draws first
    assert data.val[1].tolist() == [0, 0, 1, 1]
    from toolkit.data.images import load_image, preprocess_image

    first_val_b = preprocess_image(load_image(root / "b" / f"{order_b[0]}.png"), PREP)
    assert torch.equal(data.val[0][0], first_val_b)


@pytest.mark.parametrize("form", ["json", "lines", "mapping"])
def test_class_map_renames_folders(tmp_path: Path, form: str) -> None:
    root = make_folder(tmp_path / "d", {"Katze": 2, "new": 2}, splits=("train", "val"))
    names = ["cat", "dog", "new"]
    class_map: object = {"Katze": "cat"}
    if form == "json":
        class_map = tmp_path / "map.json"
        class_map.write_text('{"Katze": "cat", "Hund": "dog"}')
    elif form == "lines":
        class_map = tmp_path / "map.csv"
        class_map.write_text("# folder,class\nKatze, cat\n\n")
    data = load_training_data(root, PREP, names, class_map=class_map)  # type: ignore[arg-type]
    assert data.train[1].tolist() == [0, 0, 2, 2] and data.unseen_classes() == (1,)


def test_bad_class_maps_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"Katze": 2, "Maus": 2})
    names = ["cat", "dog"]
    with pytest.raises(DataError, match="Maus are not classes") as info:
        load_training_data(root, PREP, names, class_map={"Katze": "cat"})
    assert info.value.param == "class_map"
    with pytest.raises(DataError, match="not classes of the model: lion") as info:
        load_training_data(root, PREP, names, class_map={"Katze": "lion"})
    with pytest.raises(DataError, match="both 'Katze' and 'Maus'"):
        load_training_data(root, PREP, names, class_map={"Katze": "cat", "Maus": "cat"})
    bad = tmp_path / "bad.txt"
    bad.write_text("Katze cat\n")
    with pytest.raises(DataError, match="line 1 is not 'folder,class'") as info:
        load_training_data(root, PREP, names, class_map=bad)
    assert info.value.param == "class_map"
    with pytest.raises(DataError, match="cannot read class map"):
        load_training_data(root, PREP, names, class_map=tmp_path / "missing.json")
    with pytest.raises(InvalidArgumentError, match="image folder"):
        load_training_data("digits", PREP, [str(d) for d in range(10)], class_map={"a": "0"})


def test_digits_subset_of_a_ten_class_model_keeps_its_indices() -> None:
    names = [str(d) for d in range(10)]
    data = load_training_data("digits", PREP, names, digits=[7, 8, 9])
    assert set(data.train[1].tolist()) == {7, 8, 9}
    assert data.seen_classes() == (7, 8, 9) and data.unseen_classes() == tuple(range(7))


def test_data_errors_name_keyword_arguments_not_flags(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(InvalidArgumentError) as info:
        load_training_data(root, PREP, ["a", "b"], digits=[0, 1])
    assert info.value.param == "digits" and "--" not in info.value.one_line()
    with pytest.raises(DataError) as data_info:
        load_training_data("digits", PREP, ["0", "1"], digits=[0, 1, 2])
    assert data_info.value.param == "digits" and "--" not in data_info.value.one_line()


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        load_training_data(root, PREP, ["a", "b"])


def test_non_image_file_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes.txt' is not an image file \(class 'a'\)"):
        load_training_data(root, PREP, ["a", "b"])


def test_empty_class_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"a": 2})
    (root / "b").mkdir()
    with pytest.raises(DataError, match=r"class 'b' .* has no images"):
        load_training_data(root, PREP, ["a", "b"])


def test_missing_folder_and_subset_on_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_training_data(tmp_path / "nope", PREP, ["a"])
    with pytest.raises(InvalidArgumentError, match="digit subset"):
        load_training_data(tmp_path, PREP, ["a"], digits=[1])


def test_augmentation_depends_only_on_its_generator() -> None:
    x = torch.randn(8, 3, 16, 16)
    a = augment_batch(x, torch.Generator().manual_seed(5), mode="shift-flip")
    b = augment_batch(x, torch.Generator().manual_seed(5), mode="shift-flip")
    c = augment_batch(x, torch.Generator().manual_seed(6), mode="shift-flip")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape
    assert augment_batch(x, torch.Generator(), mode="none") is x
    # a shift moves content but keeps the values of the image (edge replication, no new values)
    s = augment_batch(x[:1], torch.Generator().manual_seed(0), mode="shift")
    assert set(s.unique().tolist()) <= set(x[:1].unique().tolist())
    with pytest.raises(InvalidArgumentError, match="augmentation"):
        augment_batch(x, torch.Generator(), mode="rotate")
