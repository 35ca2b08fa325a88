"""Hatchling build hook: compiles ``_plainjson.c``, the C proof that a value is plain JSON.

``pip install -e .`` builds the module in place, beside its source; a wheel carries it and is
tagged for the platform it was built on. The compiler and flags are the ones the running
Python was built with (``sysconfig``), as for any C extension. Without a working C compiler
the build goes on with a warning and the package is pure Python: `inspector.core.metadata`
then proves values with its own walk, which gives the same answers more slowly (about 2x
slower on records of short strings). CI requires the compiled module
(``tests/core/test_metadata_scan.py``).

Not part of the installed package: the wheel excludes this file and the C source.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "inspector/core/_plainjson.c"
TARGET = "inspector/core/_plainjson"


def compile_extension(source: Path, output: Path) -> None:
    """Compile and link ``source`` into the extension module ``output`` (raises on failure)."""
    include = sysconfig.get_paths()["include"]
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    linker = shlex.split(sysconfig.get_config_var("LDSHARED") or "cc -shared")
    with tempfile.TemporaryDirectory() as scratch:
        obj = Path(scratch) / "_plainjson.o"
        flags = ["-O2", "-fPIC", "-Wall", f"-I{include}"]
        subprocess.run(
            [*compiler, *flags, "-c", str(source), "-o", str(obj)], check=True, capture_output=True
        )
        built = Path(scratch) / output.name
        subprocess.run([*linker, str(obj), "-o", str(built)], check=True, capture_output=True)
        shutil.move(str(built), output)


class PlainJsonBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Builds the extension for the wheel target (standard and editable)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        name = TARGET.rsplit("/", 1)[1] + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":
            output = root / TARGET
            output = output.with_name(name)
        else:
            self._scratch = tempfile.mkdtemp(prefix="plainjson-")
            output = Path(self._scratch) / name
        try:
            compile_extension(root / SOURCE, output)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.app.display_warning(
                f"the C proof of plain JSON ({SOURCE}) was not built, metadata validation falls back "
                f"to pure Python: {exc}\n{detail.decode(errors='replace')}"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(output)] = f"{TARGET.rsplit('/', 1)[0]}/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
