"""The wheel a user installs (``pip install .``) works outside the checkout: built-in cells, code generation.

Builds the wheel from this tree (pip wheel, no build isolation: the build backend is already here), installs it
with ``--no-deps`` into a fresh virtual environment, and makes this environment's *dependencies* importable through
a path file (their site-packages appended to sys.path; no editable symmft comes along, since nested .pth files are
not processed there), so the test costs seconds instead of a download of every dependency. CI's own
``pip install -e '.[test]'`` resolves the same declared dependencies. The commands run from an empty folder, so
nothing can be found from the source tree.
"""

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import symmft

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("symmft-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "_deps_of_the_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SYMMFT_CACHE"] = str(tmp / "cache")

    def run(*args):
        return subprocess.run([env_dir / "bin" / "symmft", *args], cwd=work, env=env, capture_output=True, text=True)

    return run, python, env, work


def test_the_wheel_ships_the_built_in_cells(installed):
    run, *_ = installed
    result = run("cells")
    assert result.returncode == 0, result.stderr
    for name in ("lstm", "gru", "gru_reset_before", "minimal_rnn", "vanilla_rnn"):
        assert name in result.stdout


def test_installed_symmft_analyzes_the_lstm_as_the_checkout_does(installed):
    run, *_ = installed
    result = run("analyze", "lstm", "--set", "mu_f=3", "--json")
    assert result.returncode == 0, result.stderr
    installed_result = json.loads(result.stdout)
    here = symmft.analyze(symmft.load_cell("lstm"), {"mu_f": 3.0})
    assert installed_result["status"] == "OK"
    assert installed_result["fixed_point"]["c"]["second_moment"] == pytest.approx(float(here.fixed_point["Q_c"]), rel=1e-12)


def test_installed_symmft_generates_the_checkouts_training_step(installed):
    run, *_ = installed
    result = run("codegen", "lstm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == symmft.generate("lstm").strip()


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    _, python, env, work = installed
    where = subprocess.run([python, "-c", "import symmft, symmft.cell.trace as t; print(symmft.__file__, t.BUILTIN_DIR)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in where and "site-packages" in where
