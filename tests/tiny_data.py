"""Tiny data sets in the official layouts, written by the tests that need one."""

from pathlib import Path

from PIL import Image


def tiny_miniimagenet(root: Path, classes: dict[str, int] | None = None, per_class: int = 6) -> Path:
    """Ravi & Larochelle's layout (``{train,val,test}.csv`` and ``images/``) with small solid-colour JPEGs.

    ``classes`` gives the classes of each split (3 / 2 / 2 by default), each with ``per_class`` images.
    """
    (root / "images").mkdir(parents=True)
    for number, (part, count) in enumerate((classes or {"train": 3, "val": 2, "test": 2}).items()):
        rows = []
        for c in range(count):
            wnid = f"n{number}{c:07d}"
            for j in range(per_class):
                name = f"{wnid}{j + 1:08d}.jpg"
                Image.new("RGB", (24, 20), (40 * c % 256, 30 * j % 256, 100)).save(root / "images" / name)
                rows.append(f"{name},{wnid}")
        (root / f"{part}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return root
