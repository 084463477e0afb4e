"""Every Python example in README.md runs as written.

Each ```python block is saved as a script and run in a fresh interpreter from an empty folder, with
``METARL_DATA`` pointing at the data it needs: the shared Omniglot for the Omniglot examples, a tiny
Mini-ImageNet generated in the official layout for the Mini-ImageNet example. The only edit is to the
stable-baselines3 example's training length (1,000,000 steps there, one PPO rollout here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHORTENED = {"learn(1_000_000,": "learn(256,"}  # SB3 collects one full rollout (8 x 2048 steps) anyway


def readme_examples() -> list[pytest.param]:
    """The README's Python blocks, each named by its line number and the heading above it."""
    text = README.read_text()
    examples = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.MULTILINE)
        name = re.sub(r"[^a-z0-9]+", "-", headings[-1].lower()).strip("-") if headings else "top"
        examples.append(pytest.param(match.group(1), id=f"line{line}-{name}"))
    return examples


def test_the_readme_has_examples_and_the_shortened_calls() -> None:
    examples = readme_examples()
    assert len(examples) >= 10
    for long in SHORTENED:  # a changed call would run at full length until the timeout
        assert any(long in example.values[0] for example in examples), f"no README example contains {long!r}"


def write_tiny_miniimagenet(root: Path, classes: int = 5, per_class: int = 16) -> None:
    """``root/{train,val,test}.csv`` and ``root/images/`` with solid-colour 84x84 JPEGs."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part_index, part in enumerate(("train", "val", "test")):
        rows = ["filename,label"]
        for c in range(classes):
            wnid = f"n{part_index:02d}{c:06d}"
            for j in range(per_class):
                name = f"{wnid}{j + 1:08d}.jpg"
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                Image.new("RGB", (84, 84), colour).save(root / "images" / name)
                rows.append(f"{name},{wnid}")
        (root / f"{part}.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def example_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of one example: data folders for the examples that load data sets."""
    code = request.node.callspec.params["code"]
    env = dict(os.environ)
    if "omniglot" in code:
        root = request.getfixturevalue("omniglot_root")
        env["METARL_DATA"] = str(root.parent)
        env["METARL_CACHE"] = str(request.getfixturevalue("omniglot_cache"))
    if "miniimagenet" in code:
        write_tiny_miniimagenet(tmp_path / "data" / "miniimagenet")
        env["METARL_DATA"] = str(tmp_path / "data")
        env["METARL_CACHE"] = str(tmp_path / "cache")
    return env


@pytest.mark.parametrize("code", readme_examples())
def test_readme_example_runs(code: str, example_env: dict[str, str], tmp_path: Path) -> None:
    for long, short in SHORTENED.items():
        code = code.replace(long, short)
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=example_env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"the README example failed:\n{code}\n--- stderr ---\n{result.stderr[-4000:]}"
