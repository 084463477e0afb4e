"""Every Python example in README.md runs as written.

Each ```python block is saved as a script and run as ``__main__`` from the repository root (in this process,
``scripts_support.script``: a fresh interpreter would add 4-8 s of imports to each), with ``METARL_DATA``
pointing at the data it needs: the shared Omniglot for the Omniglot examples, a tiny
Mini-ImageNet generated in the official layout for the Mini-ImageNet example. The only edit is to the
stable-baselines3 example's training length (1,000,000 steps there, one PPO rollout here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scripts_support import ROOT, script
from tiny_data import tiny_miniimagenet

README = ROOT / "README.md"
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


@pytest.fixture
def example_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """What one example adds to the environment: data folders for the examples that load data sets."""
    code = request.node.callspec.params["code"]
    env = {}
    if "omniglot" in code:
        root = request.getfixturevalue("omniglot_root")
        env["METARL_DATA"] = str(root.parent)
        env["METARL_CACHE"] = str(request.getfixturevalue("omniglot_cache"))
    if "miniimagenet" in code:
        tiny_miniimagenet(tmp_path / "data" / "miniimagenet", {"train": 5, "val": 5, "test": 5}, per_class=16)
        env["METARL_DATA"] = str(tmp_path / "data")
        env["METARL_CACHE"] = str(tmp_path / "cache")
    return env


@pytest.mark.parametrize("code", readme_examples())
def test_readme_example_runs(code: str, example_env: dict[str, str], tmp_path: Path) -> None:
    for long, short in SHORTENED.items():
        code = code.replace(long, short)
    example = tmp_path / "example.py"
    example.write_text(code)
    script(str(example), env=example_env)  # raises with the example's output when it fails
