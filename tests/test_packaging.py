"""The built wheel carries the top-level resources/ and both entry points."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_wheel_contains_every_resource(wheel):
    names = set(wheel.namelist())
    resources = [p for p in (ROOT / "resources").rglob("*") if p.is_file()]
    assert resources, "resources/ is empty"
    for path in resources:
        assert f"inspector/resources/{path.relative_to(ROOT / 'resources').as_posix()}" in names


def test_wheel_declares_the_entry_points(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "small-peer-inspector = inspector.__main__:main" in text
    assert "inspector-big-peer = inspector.big_peer.__main__:main" in text


def test_wheel_carries_the_compiled_proof_not_its_source(wheel):
    names = set(wheel.namelist())
    assert "inspector/core/_plainjson.c" not in names
    assert "inspector/core/_plainjson_build.py" not in names
    assert "inspector/core/_plainjson.pyi" in names
    compiled = [n for n in names if n.startswith("inspector/core/_plainjson.") and n.endswith(".so")]
    if not compiled and os.environ.get("CI") != "true":
        pytest.skip("no C compiler here: the wheel is pure Python")
    assert len(compiled) == 1
    # A wheel with a compiled module is tagged for its platform, never py3-none-any.
    (wheel_info,) = [n for n in names if n.endswith(".dist-info/WHEEL")]
    assert "Tag: py3-none-any" not in wheel.read(wheel_info).decode()


def _build_without_a_compiler(out, **env):
    return subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, "CC": "false", **env},
        check=False,
    )


def test_without_a_compiler_the_wheel_is_pure_python_and_says_so(tmp_path):
    built = _build_without_a_compiler(tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert "falls back to pure Python" in built.stdout + built.stderr


def test_a_build_that_requires_the_compiled_proof_fails_without_a_compiler(tmp_path):
    built = _build_without_a_compiler(tmp_path, INSPECTOR_REQUIRE_COMPILED="1")
    assert built.returncode != 0
    assert "INSPECTOR_REQUIRE_COMPILED=1" in built.stdout + built.stderr
    assert not list(tmp_path.glob("*.whl"))
