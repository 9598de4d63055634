"""A lean launcher for the reference runtime: ``python -m reference_runtime.launcher [DEST]``.

The console script pip writes runs the interpreter with ``site`` (every ``.pth`` of the
environment: an editable install's import finder alone costs ~25 ms here) and imports ``re`` to
tidy ``argv[0]``. A runtime is started several times per container (create, start, state, kill,
delete), and runc's whole ``run`` takes 17 ms on this machine, so that start-up is most of the
difference. The reference runtime needs only the standard library, so its launcher can run
the interpreter isolated and without ``site`` (``-IS``) and put the one directory that holds
this package on ``sys.path`` itself.

Two more start-up costs go the same way, measured here (2026-12-01, CPU time of importing what
``run`` needs, 40 runs each): the cyclic garbage collector, which runs again and again while
some 75 modules are imported (every allocation-heavy import crosses its thresholds), costs
~4 ms; a verb's process is short-lived and makes no reference cycles worth collecting, so the
launcher disables it (``gc.disable()``: reference counting still frees everything else).
The interpreter's teardown (every module and object freed one by one at exit) costs ~5 ms, so
the launcher leaves with ``os._exit`` once stdout and stderr are flushed.

Two things happen before the command line is even imported: the runtime's modules are served
from one compiled archive (codearchive.py, written beside the package's .pyc files when the
launcher is installed), and for create, run and exec the cgroup warm-up helper starts
(cgroups/warmup.py), so the kernel's grace period runs during every import that follows.

DEST defaults to ``bulkhead-runtime`` beside the interpreter (where pip put the console script,
which this replaces; ``pip uninstall`` still removes it by name).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = """#!{python} -IS
# The reference runtime's launcher (python -m reference_runtime.launcher): no site, no re,
# no cyclic garbage collector, no interpreter teardown, modules from one archive, the cgroup
# warm-up first (reference_runtime/launcher.py).
import gc
gc.disable()
import sys
sys.path.insert(0, {root!r})
from reference_runtime import codearchive
codearchive.install({archive!r})
from reference_runtime.cgroups import warmup
warmup.early(sys.argv)
from reference_runtime.cli import leave, main
code = main()
warmup.finish()
leave(code)
"""


# Run by the launcher's interpreter, which may not be the one installing it: the archive is in
# its marshal format and named by its cache tag. Prints where the archive is.
ARCHIVE_BUILD = """import os, sys
sys.path.insert(0, sys.argv[1])
from reference_runtime import codearchive, launcher
archive = launcher.archive_path(sys.argv[1], sys.implementation.cache_tag)
os.makedirs(os.path.dirname(archive), exist_ok=True)
codearchive.build(sys.argv[1] + "/reference_runtime", archive)
print(archive)
"""


def archive_path(root: str, python_tag: str) -> str:
    """Where the launcher for one interpreter (its cache tag: ``cpython-311``) finds the
    archive: beside the package's own compiled files."""
    return os.path.join(root, "reference_runtime", "__pycache__", f"launcher.{python_tag}.codes")


def launcher_text(python: str, root: str, archive: str) -> str:
    return TEMPLATE.format(python=python, root=root, archive=archive)


def install(dest: Path, python: str | None = None) -> Path:
    """Writes the launcher to ``dest`` atomically (a running runtime keeps its old file)."""
    root = str(Path(__file__).resolve().parent.parent)
    python = python or sys.executable
    # Without column tables (-X no_debug_ranges): smaller code objects, less memory in every verb.
    archive = subprocess.run(
        [python, "-IS", "-X", "no_debug_ranges", "-c", ARCHIVE_BUILD, root],
        stdout=subprocess.PIPE, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The interpreter as invoked (a venv's bin/python, not the base it links to): -I keeps the
    # venv's prefix, which is all the standard library needs.
    text = launcher_text(python, root, archive)
    part = dest.with_name(f".{dest.name}.part")
    part.write_text(text)
    part.chmod(0o755)
    os.replace(part, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m reference_runtime.launcher [DEST]", file=sys.stderr)
        return 2
    dest = Path(args[0]) if args else Path(sys.executable).parent / "bulkhead-runtime"
    print(install(dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
