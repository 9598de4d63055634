"""The minimal container root filesystem every test's bundle is layered on.

It holds busybox (Debian's busybox-static), the statically linked ``bulkhead-probe`` and a few
fixture files. It is built once into a cache directory named by a hash of its inputs, atomically
(build beside, then rename), so concurrent xdist workers and later sessions share one copy, and
each container sees it only as the read-only lower layer of its own overlay.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bulkhead.errors import SetupError

# Bump when the layout below changes, so old caches are not reused.
LAYOUT_VERSION = "1"
PROBE = "bulkhead-probe"
FIXTURE_ROOT = "/srv/bulkhead"
# Fixture files and directories for masked/read-only path tests: known content, known place.
FIXTURE_FILES = tuple(f"{FIXTURE_ROOT}/file-{i}" for i in range(6))
FIXTURE_DIRS = tuple(f"{FIXTURE_ROOT}/dir-{i}" for i in range(4))
FIXTURE_CONTENT = "bulkhead fixture\n"


def default_cache_dir() -> Path:
    env = os.environ.get("BULKHEAD_CACHE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/bulkhead")
    return Path.home() / ".cache" / "bulkhead"


def _probe_source() -> bytes:
    return (resources.files("bulkhead") / "probe" / f"{PROBE}.c").read_bytes()


def _find_busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).is_file():
            return Path(candidate)
    raise SetupError("busybox not found: install Debian's busybox-static")


@dataclass(frozen=True)
class RootfsImage:
    """A built rootfs directory; never written to after the build."""

    path: Path

    @property
    def probe(self) -> str:
        """The probe's path inside the container."""
        return f"/bin/{PROBE}"


def _compile_probe(dest: Path) -> None:
    src = dest.with_suffix(".c")
    src.write_bytes(_probe_source())
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SetupError("no C compiler to build bulkhead-probe: install gcc and libc6-dev")
    done = subprocess.run(
        [cc, "-static", "-O2", "-Wall", "-o", str(dest), str(src)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    src.unlink()
    if done.returncode != 0:
        raise SetupError(f"failed to build bulkhead-probe: {done.stderr.strip()}")


def _populate(root: Path, busybox: Path) -> None:
    for d in ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "var", FIXTURE_ROOT[1:]):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    _compile_probe(root / "bin" / PROBE)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    for f in FIXTURE_FILES:
        (root / f[1:]).write_text(FIXTURE_CONTENT)
    for d in FIXTURE_DIRS:
        (root / d[1:]).mkdir()
        (root / d[1:] / "inner").write_text(FIXTURE_CONTENT)


def build_rootfs(cache_dir: Path | None = None) -> RootfsImage:
    """The cached rootfs for the current inputs, building it if it is not there yet."""
    cache = cache_dir or default_cache_dir()
    busybox = _find_busybox()
    digest = hashlib.sha256()
    for part in (LAYOUT_VERSION.encode(), busybox.read_bytes(), _probe_source()):
        digest.update(hashlib.sha256(part).digest())
    target = cache / f"rootfs-{digest.hexdigest()[:16]}"
    if (target / "bin" / PROBE).is_file():
        return RootfsImage(target)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        _populate(staging, busybox)
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            # Another worker finished first (rename onto a non-empty dir fails): use theirs.
            if not (target / "bin" / PROBE).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return RootfsImage(target)
