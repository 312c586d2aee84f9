"""A non-editable install (a built wheel) holds the whole package and runs outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return next(out.glob("iapo_gym-*.whl"))


def test_wheel_maps_top_level_folders_under_one_import_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"iapo_gym"}, f"the wheel must claim only the import name iapo_gym, got {tops}"
    for must in ("iapo_gym/py.typed", "iapo_gym/envs/base.py", "iapo_gym/agents/oracle.py", "iapo_gym/benchmarks/env_speed.py"):
        assert must in names


def test_wheel_carries_the_compiled_area_kernel_exactly_where_it_builds(wheel: Path) -> None:
    try:
        import iapo_gym._area  # noqa: F401  (built by this checkout's install)

        built = True
    except ImportError:  # no C compiler at install here
        built = False
    names = zipfile.ZipFile(wheel).namelist()
    compiled = [n for n in names if n.startswith("iapo_gym/_area.") and n.endswith((".so", ".pyd"))]
    assert bool(compiled) == built, (built, compiled)
    assert "iapo_gym/tools/resample.py" in names  # the cv2 fallback ships either way


def test_installed_wheel_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    code = (
        "import gymnasium as gym, iapo_gym, iapo_gym.agents;"
        "assert iapo_gym.__file__.startswith(%r), iapo_gym.__file__;"
        "env = gym.make('VisualToolVQA-HBar-v0'); obs, info = env.reset(seed=0);"
        "agent = iapo_gym.agents.OracleAgent(); done = False\n"
        "while not done:\n"
        "    obs, r, te, tr, info = env.step(agent.act(obs, info)); done = te or tr\n"
        "print(info['correct'])"
    ) % str(target)
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_atomic_writes_leave_ordinary_permissions(tmp_path: Path) -> None:
    from iapo_gym.io import atomic_write_dir, atomic_write_text

    mask = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "a.txt", "x")
        d = atomic_write_dir(tmp_path / "d", lambda p: (p / "b").write_text("y"))
    finally:
        os.umask(mask)
    assert f.stat().st_mode & 0o777 == 0o644 and d.stat().st_mode & 0o777 == 0o755
    assert f.read_text() == "x" and (d / "b").read_text() == "y"
