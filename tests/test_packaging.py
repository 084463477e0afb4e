"""The installed distribution: the three packages import from anywhere and register their task families."""

import subprocess
import sys
from importlib.metadata import entry_points

from scripts_support import ROOT


def test_packages_and_every_script_import_from_any_directory(tmp_path):
    # Most script tests run the scripts in the test process (scripts_support.script), where pytest has already
    # imported much; here each script's module body (its imports and dataclasses, not its __main__ block) runs
    # in a fresh interpreter, one for all of them.
    scripts = sorted(str(path) for path in (ROOT / "scripts").glob("*.py"))
    code = ("import runpy, sys, metarl, envs, supervised, supervised.omniglot; "
            "[runpy.run_path(path, run_name='imported') for path in sys.argv[1:]]; print(metarl.__version__)")
    result = subprocess.run([sys.executable, "-c", code, *scripts], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.1.0" and len(scripts) >= 17


def test_task_families_are_registered_as_entry_points():
    families = {ep.name: ep.value for ep in entry_points(group="metarl.task_families")}
    assert families["sinusoid"] == "supervised.sinusoid:make_sinusoid"
    assert families["omniglot"] == "supervised.omniglot:make_omniglot"


def test_metarl_never_imports_envs_or_supervised(tmp_path):
    code = ("import sys, metarl, metarl.experiment, metarl.cli, metarl.train; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('envs', 'supervised')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
