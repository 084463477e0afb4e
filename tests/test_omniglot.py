"""Omniglot loading, caching and class splits.

Tests marked by the ``omniglot_root`` fixture need the real data (``$METARL_DATA/omniglot``); the
rest build tiny stand-ins in ``tmp_path``. The full decode runs once per session, on a writable copy
of the data folder, so that "nothing is written next to the zips" is a real check.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from metarl.tasks import SupervisedTaskDistribution
from supervised import omniglot
from supervised.omniglot import (
    OmniglotData,
    default_root,
    load_omniglot,
    make_omniglot,
    split_class_names,
    split_classes,
)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def writable_copy(source: Path, target: Path, names: tuple[str, ...]) -> Path:
    """Copy ``names`` (files or folders) of ``source`` to ``target``, keeping mtimes, made writable."""
    target.mkdir(parents=True)
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, copy_function=shutil.copy2)
        else:
            shutil.copy2(source / name, target / name)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def has_zips(root: Path) -> bool:
    return all((root / f"{name}.zip").is_file() for name in omniglot.SETS)


@dataclass
class Loaded:
    data: OmniglotData
    root: Path  # a writable copy of the zips and split files (or the data root, if it has no zips)
    cache: Path
    before: dict[str, tuple[int, int]]
    after: dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def loaded(omniglot_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    if has_zips(omniglot_root):
        names = (*(f"{n}.zip" for n in omniglot.SETS), "splits")
        root = writable_copy(omniglot_root, tmp_path_factory.mktemp("data") / "omniglot", names)
    else:  # extracted folders only: load them where they are
        root = omniglot_root
    cache = tmp_path_factory.mktemp("cache")
    before = listing(root)
    data = load_omniglot(root, cache_dir=cache)
    return Loaded(data, root, cache, before, listing(root))


def test_all_characters_and_drawings(loaded: Loaded) -> None:
    data = loaded.data
    assert data.images.shape == (1623, 20, 28, 28) and data.images.dtype == np.uint8
    assert len(data.characters) == 1623 and len(set(data.characters)) == 1623
    assert data.background.dtype == np.bool_
    assert data.background[:964].all() and not data.background[964:].any()
    assert all(re.fullmatch(r"[^/]+/character\d\d", c) for c in data.characters)
    assert data.characters[:964] == sorted(data.characters[:964])
    assert data.characters[964:] == sorted(data.characters[964:])
    assert len({c.split("/")[0] for c in data.characters[:964]}) == 30
    assert len({c.split("/")[0] for c in data.characters[964:]}) == 20


def test_ink_is_bright_and_the_minority(loaded: Loaded) -> None:
    images = loaded.data.images
    assert images.min() == 0 and images.max() == 255
    assert images.mean() / 255 < 0.5
    assert (images[..., 0, :] < 64).mean() > 0.9  # the border is background: dark
    assert (images.reshape(1623 * 20, -1).max(axis=1) > 128).all()  # every drawing has ink


def test_maml_split(loaded: Loaded) -> None:
    data = loaded.data
    train, val, test = (split_classes(data, "maml", part) for part in ("train", "val", "test"))
    assert train.shape == (4800, 20, 28, 28) and train.dtype == np.uint8
    assert val.shape == test.shape == (1692, 20, 28, 28)
    assert np.array_equal(val, test)  # the MAML split has no separate validation set
    names = {part: split_class_names(data, "maml", part) for part in ("train", "test")}
    characters = {part: {n.rsplit("/", 1)[0] for n in names[part]} for part in names}
    assert len(characters["train"]) == 1200 and len(characters["test"]) == 423
    assert characters["train"] | characters["test"] == set(data.characters)
    assert split_classes(data, "maml", "train").tobytes() == train.tobytes()  # a fixed split


def test_vinyals_split(loaded: Loaded) -> None:
    data = loaded.data
    sizes = {"train": 4112, "val": 688, "test": 1692}
    characters = {}
    for part, size in sizes.items():
        classes = split_classes(data, "vinyals", part, loaded.root)
        assert classes.shape == (size, 20, 28, 28)
        names = split_class_names(data, "vinyals", part, loaded.root)
        assert names == (loaded.root / "splits" / "vinyals" / f"{part}.txt").read_text().split()
        characters[part] = {n.rsplit("/", 1)[0] for n in names}
        assert len(characters[part]) == size // 4
    assert characters["train"].isdisjoint(characters["val"] | characters["test"])
    assert characters["val"].isdisjoint(characters["test"])
    assert set.union(*characters.values()) == set(data.characters)


def test_rotations_are_distinct_classes(loaded: Loaded) -> None:
    classes = split_classes(loaded.data, "maml", "train")
    names = split_class_names(loaded.data, "maml", "train")
    assert [n.rsplit("/", 1)[1] for n in names[:4]] == ["rot000", "rot090", "rot180", "rot270"]
    rot000, rot090, rot180 = classes[0::4], classes[1::4], classes[2::4]
    assert np.array_equal(rot090, np.rot90(rot000, 1, axes=(-2, -1)))
    assert np.array_equal(rot180, np.rot90(rot000, 2, axes=(-2, -1)))
    assert all(not np.array_equal(a, b) for a, b in zip(rot000, rot090))
    source = loaded.data.characters.index(names[0].rsplit("/", 1)[0])
    assert np.array_equal(rot000[0], loaded.data.images[source])


def test_zips_are_read_in_place(loaded: Loaded) -> None:
    assert loaded.before == loaded.after  # nothing extracted or written next to the zips
    assert [p.suffix for p in loaded.cache.iterdir()] == [".npz"]  # one cache file, no temporary left


def test_second_load_comes_from_the_cache(loaded: Loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(omniglot, "_decode_all", no_decoding)
    again = load_omniglot(loaded.root, cache_dir=loaded.cache)
    assert np.array_equal(again.images, loaded.data.images)
    assert again.characters == loaded.data.characters
    assert np.array_equal(again.background, loaded.data.background)
    assert listing(loaded.root) == loaded.before


def test_cache_key_follows_size_and_data(loaded: Loaded, tmp_path: Path) -> None:
    if not has_zips(loaded.root):
        pytest.skip("the Omniglot data has no zips")
    root = writable_copy(loaded.root, tmp_path / "omniglot", tuple(f"{n}.zip" for n in omniglot.SETS))
    key = omniglot._cache_path(root, 28, loaded.cache)
    assert key == omniglot._cache_path(loaded.root, 28, loaded.cache)  # same files, same key
    assert key.parent == loaded.cache
    assert omniglot._cache_path(root, 32, loaded.cache) != key
    stat = (root / "images_evaluation.zip").stat()
    os.utime(root / "images_evaluation.zip", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert omniglot._cache_path(root, 28, loaded.cache) != key


def test_extracted_folder_matches_zip(loaded: Loaded, tmp_path: Path) -> None:
    if not has_zips(loaded.root):
        pytest.skip("the Omniglot data has no zips")
    alphabet = loaded.data.characters[964].split("/")[0]  # extract one alphabet: fast, and enough to compare
    with zipfile.ZipFile(loaded.root / "images_evaluation.zip") as archive:
        chosen = [m for m in archive.namelist() if m.startswith(f"images_evaluation/{alphabet}/")]
        archive.extractall(tmp_path, chosen)
    folder = tmp_path / "images_evaluation"
    def drawings(source: Path) -> list[tuple[str, str, bytes]]:  # (character, file name, png), sorted
        members = omniglot._members(source, "images_evaluation")
        return sorted((c, label.rsplit("/", 1)[1], data) for c, label, data in members if c.startswith(f"{alphabet}/"))

    from_folder = drawings(folder)
    assert from_folder == drawings(loaded.root / "images_evaluation.zip")
    assert from_folder and len(from_folder) % 20 == 0
    character, _, data = from_folder[0]
    row = loaded.data.characters.index(character)
    assert np.array_equal(omniglot._decode(data, 28, "x"), loaded.data.images[row, 0])
    with pytest.raises(ValueError, match="expected 659; the set is incomplete"):
        omniglot._read_set(folder, "images_evaluation", 28)
    fingerprint = omniglot._fingerprint(folder)
    drawing = next(folder.rglob("*.png"))
    os.utime(drawing, ns=(0, 10**18))
    assert omniglot._fingerprint(folder) != fingerprint


def test_make_omniglot(loaded: Loaded) -> None:
    rng = np.random.default_rng(0)
    for part, class_split, classes in (("train", "maml", 4800), ("val", "vinyals", 688)):
        dist = make_omniglot(
            part, ways=5, shots=1, queries=15, class_split=class_split, root=loaded.root, cache_dir=loaded.cache
        )
        assert isinstance(dist, SupervisedTaskDistribution)
        assert dist.num_classes == classes
        tasks = dist.sample_tasks(4, rng)
        assert all(t.family == "omniglot" for t in tasks)
        episode = dist.episode(tasks, rng)
        assert episode.support_x.shape == (4, 5, 1, 28, 28)
        assert episode.query_x.shape == (4, 75, 1, 28, 28)
        assert 0.0 <= float(episode.query_x.min()) and float(episode.query_x.max()) <= 1.0


# ------------------------------------------------------------------------------------------------
# Errors; these need no real data.


def tiny_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (105, 105), 1).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../evil.png", "images_background/../../evil.png", "/abs/evil.png"])
def test_zip_member_escaping_its_folder_is_rejected(tmp_path: Path, member: str) -> None:
    root = tmp_path / "omniglot"
    root.mkdir()
    for name in omniglot.SETS:
        with zipfile.ZipFile(root / f"{name}.zip", "w") as archive:
            archive.writestr(f"{name}/Alphabet/character01/0001_01.png", tiny_png())
            if name == "images_background":
                archive.writestr(member, tiny_png())
    with pytest.raises(ValueError, match=re.escape(repr(member))):
        load_omniglot(root, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in root.iterdir()) == ["images_background.zip", "images_evaluation.zip"]
    assert not (tmp_path / "evil.png").exists()


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "omniglot"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_omniglot(missing, cache_dir=tmp_path / "cache")


def test_missing_set_names_the_expected_files(tmp_path: Path) -> None:
    (tmp_path / "images_background.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "images_evaluation.zip"))):
        load_omniglot(tmp_path, cache_dir=tmp_path.parent / "cache")


def test_default_root_needs_metarl_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("METARL_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="METARL_DATA"):
        default_root()
    monkeypatch.setenv("METARL_DATA", str(tmp_path))
    assert default_root() == tmp_path / "omniglot"


def test_corrupt_image_names_the_file() -> None:
    with pytest.raises(ValueError, match=re.escape("images_background/A/character01/0001_01.png")):
        omniglot._decode(b"not a png", 28, "images_background/A/character01/0001_01.png")
    assert omniglot._decode(tiny_png(), 28, "ok.png").shape == (28, 28)


def test_cache_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    for name in omniglot.SETS:
        (tmp_path / f"{name}.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="inside the data folder"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "cache")


def test_bad_part_or_split_lists_valid_values() -> None:
    with pytest.raises(ValueError, match="train, val, test"):
        make_omniglot("validation")
    with pytest.raises(ValueError, match="maml, vinyals"):
        make_omniglot("train", class_split="protonet")


def test_missing_vinyals_split_files(tmp_path: Path) -> None:
    data = OmniglotData(np.zeros((2, 20, 4, 4), np.uint8), ["A/character01", "A/character02"], np.ones(2, bool))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "splits" / "vinyals" / "val.txt"))):
        split_classes(data, "vinyals", "val", tmp_path)
