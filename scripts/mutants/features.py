"""Mutants whose ``features`` document lies, or that ignore what it declares (features.md,
features-linux.md), and ones that drop ``linux.intelRdt`` or ``linux.memoryPolicy``.

The verb mutants rewrite the real runtime's ``features`` output (print the changed JSON, exit 0);
the config mutants change the config the real runtime is given. None widens what a container
may reach: they add names to a document, drop configured fields, or make a create fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from mutants import REAL, Call, config, verb


def _real_features(call: Call) -> dict:
    done = subprocess.run([REAL, *call.args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict)
    return doc


def _features_mutant(name: str) -> Callable[[Callable[[dict], None]], Callable[[dict], None]]:
    """Registers ``change(doc)`` as a verb mutant of ``features``."""

    def register(change: Callable[[dict], None]) -> Callable[[dict], None]:
        @verb(name)
        def mutant(call: Call) -> int | None:
            if call.verb != "features":
                return None
            doc = _real_features(call)
            change(doc)
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return 0

        return change

    return register


@_features_mutant("features-unknown-property")
def unknown_property(doc: dict) -> None:
    doc.setdefault("linux", {})["bulkheadWidgets"] = {"enabled": True}


@_features_mutant("features-max-below-min")
def max_below_min(doc: dict) -> None:
    doc["ociVersionMin"], doc["ociVersionMax"] = "1.0.0", "0.9.0"


@_features_mutant("features-no-min")
def no_min(doc: dict) -> None:
    doc.pop("ociVersionMin", None)


@_features_mutant("features-newer-property")
def newer_property(doc: dict) -> None:
    # memoryPolicy arrived in 1.3.0; a document declaring 1.1.0 must not carry it.
    doc["ociVersionMax"] = "1.1.0"
    doc.setdefault("linux", {})["memoryPolicy"] = {"modes": ["MPOL_DEFAULT"]}


@_features_mutant("features-bad-annotation")
def bad_annotation(doc: dict) -> None:
    doc.setdefault("annotations", {})["org.bulkhead.number"] = 7


@_features_mutant("features-extra-namespace")
def extra_namespace(doc: dict) -> None:
    # A type the real runtime may not know (runc 1.1 refuses "time").
    linux = doc.setdefault("linux", {})
    linux["namespaces"] = [*(linux.get("namespaces") or []), "time"]


@_features_mutant("features-bogus-mount-option")
def bogus_mount_option(doc: dict) -> None:
    doc["mountOptions"] = [*(doc.get("mountOptions") or []), "bulkhead-nonsense"]


@_features_mutant("features-extra-seccomp-arch")
def extra_seccomp_arch(doc: dict) -> None:
    seccomp = doc.setdefault("linux", {}).setdefault("seccomp", {})
    seccomp["archs"] = [*(seccomp.get("archs") or []), "SCMP_ARCH_RISCV64", "SCMP_ARCH_SH"]


@_features_mutant("features-unsupported-flag")
def unsupported_flag(doc: dict) -> None:
    # WAIT_KILLABLE_RECV needs Linux 5.19 and libseccomp 2.6: "supported" it is not, everywhere.
    seccomp = doc.setdefault("linux", {}).setdefault("seccomp", {})
    for key in ("knownFlags", "supportedFlags"):
        seccomp[key] = [*(seccomp.get(key) or []), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


@_features_mutant("features-idmap-claimed")
def idmap_claimed(doc: dict) -> None:
    doc.setdefault("linux", {})["mountExtensions"] = {"idmap": {"enabled": True}}


@config("caps-drop-audit-read")
def caps_drop_audit_read(cfg: dict, call: Call) -> None:
    """A runtime that declares CAP_AUDIT_READ but never grants it."""
    caps = (cfg.get("process") or {}).get("capabilities") or {}
    for name, values in caps.items():
        caps[name] = [v for v in values if v != "CAP_AUDIT_READ"]


@config("poststop-not-run")
def poststop_not_run(cfg: dict, call: Call) -> None:
    """Declares poststop but never runs it."""
    (cfg.get("hooks") or {}).pop("poststop", None)


@config("seccomp-ignored")
def seccomp_ignored(cfg: dict, call: Call) -> None:
    (cfg.get("linux") or {}).pop("seccomp", None)


def _refuse_declared(cfg: dict, key: str) -> None:
    """Makes create fail for a config naming the very ``key`` version the features declare."""
    done = subprocess.run([REAL, "features"], capture_output=True, text=True, check=False)
    declared = json.loads(done.stdout).get(key) if done.returncode == 0 else None
    if declared is not None and cfg.get("ociVersion") == declared:
        cfg["root"] = {"path": "/nonexistent-bulkhead-root"}


@config("oci-version-max-refused")
def oci_version_max_refused(cfg: dict, call: Call) -> None:
    _refuse_declared(cfg, "ociVersionMax")


@config("oci-version-min-refused")
def oci_version_min_refused(cfg: dict, call: Call) -> None:
    _refuse_declared(cfg, "ociVersionMin")


@config("intelrdt-ignored")
def intelrdt_ignored(cfg: dict, call: Call) -> None:
    (cfg.get("linux") or {}).pop("intelRdt", None)


@config("mempolicy-ignored")
def mempolicy_ignored(cfg: dict, call: Call) -> None:
    (cfg.get("linux") or {}).pop("memoryPolicy", None)
