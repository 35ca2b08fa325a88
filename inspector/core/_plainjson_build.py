"""Hatchling build hook: compiles ``_plainjson.c``, the C proof that a value is plain JSON.

``pip install -e .`` builds the module in place, beside its source; a wheel carries it and is
tagged for the platform it was built on. The compiler and linker are the ones the running
Python was built with (``sysconfig``; ``$CC`` and ``$LDSHARED`` override), as for any C
extension, and need Python's headers (Debian: ``python3-dev``). Without a working C compiler
the build goes on with a warning and the package is pure Python: `inspector.core.metadata`
then proves values with its own walk, which gives the same answers more slowly (validation
about 3x slower on records of short strings). Set ``INSPECTOR_REQUIRE_COMPILED=1`` to make that
a build error instead (``.ci/run`` does: pip shows a build hook's warnings only with
``-v``); the tests also require the compiled module under ``CI=true``. Free-threaded
builds of Python are not served: the walk's safety rests on holding the GIL.

Not part of the installed package: the wheel excludes this file and the C source.
"""

from __future__ import annotations

import os
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
    """Compile and link ``source`` into the extension module ``output`` (raises on failure).

    Linked beside ``output`` and moved over it in one rename: a process that has the old
    module loaded keeps its copy (overwriting a loaded shared object in place can crash it).
    """
    include = sysconfig.get_paths()["include"]
    # $CC and $LDSHARED override, as for any C extension built with setuptools.
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    linker = shlex.split(os.environ.get("LDSHARED") or sysconfig.get_config_var("LDSHARED") or "cc -shared")
    with tempfile.TemporaryDirectory() as scratch:
        obj = Path(scratch) / "_plainjson.o"
        flags = ["-O2", "-fPIC", "-Wall", f"-I{include}"]
        subprocess.run(
            [*compiler, *flags, "-c", str(source), "-o", str(obj)], check=True, capture_output=True
        )
        built = output.with_name(f".{output.name}.building")
        try:
            subprocess.run([*linker, str(obj), "-o", str(built)], check=True, capture_output=True)
            os.replace(built, output)
        finally:
            built.unlink(missing_ok=True)


class PlainJsonBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Builds the extension for the wheel target (standard and editable)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        name = TARGET.rsplit("/", 1)[1] + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":
            output = (root / TARGET).with_name(name)
            # A module left from an earlier build must not outlive a failed one: the tests
            # would run the old C code.
            output.unlink(missing_ok=True)
        else:
            self._scratch = tempfile.mkdtemp(prefix="plainjson-")
            output = Path(self._scratch) / name
        try:
            if sysconfig.get_config_var("Py_GIL_DISABLED"):
                raise OSError("this Python is free-threaded; the walk relies on the GIL")
            compile_extension(root / SOURCE, output)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")
            problem = f"the C proof of plain JSON ({SOURCE}) was not built: {exc}\n{detail}"
            if os.environ.get("INSPECTOR_REQUIRE_COMPILED") == "1":
                raise RuntimeError(f"{problem}(INSPECTOR_REQUIRE_COMPILED=1)") from exc
            self.app.display_warning(f"{problem}metadata validation falls back to pure Python")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(output)] = f"{TARGET.rsplit('/', 1)[0]}/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
