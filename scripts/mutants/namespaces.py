"""Mutants that get namespaces wrong."""

from __future__ import annotations

from mutants import Call, config


def _drop(kind: str) -> None:
    def mutate(cfg: dict, call: Call) -> None:
        linux = cfg.get("linux", {})
        linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] != kind]
        if kind == "uts":
            cfg.pop("hostname", None)  # runc refuses a hostname without a UTS namespace
            cfg.pop("domainname", None)

    config(f"no-{'net' if kind == 'network' else kind}-ns")(mutate)


for _kind in ("pid", "uts", "ipc", "network"):
    _drop(_kind)


# Only with runc, which refuses a rootfs without a private mount namespace: another runtime
# might mount the container's /proc and /sys over the host's.
@config("no-mount-ns", only_with=("runc",))
def no_mount_ns(cfg: dict, call: Call) -> None:
    linux = cfg.get("linux", {})
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] != "mount"]


@config("all-namespaces")
def all_namespaces(cfg: dict, call: Call) -> None:
    # A runtime that always isolates, whatever the config asks for.
    linux = cfg.setdefault("linux", {})
    have = {n["type"] for n in linux.get("namespaces", [])}
    for kind in ("pid", "network", "ipc", "uts", "mount"):
        if kind not in have:
            linux.setdefault("namespaces", []).append({"type": kind})


@config("dedupe-namespaces")
def dedupe_namespaces(cfg: dict, call: Call) -> None:
    # A runtime that quietly ignores a repeated namespace type instead of refusing the config.
    linux = cfg.setdefault("linux", {})
    seen, kept = set(), []
    for ns in linux.get("namespaces", []):
        if ns["type"] not in seen:
            seen.add(ns["type"])
            kept.append(ns)
    linux["namespaces"] = kept


@config("no-hostname")
def no_hostname(cfg: dict, call: Call) -> None:
    cfg["hostname"] = "wrong-host"


@config("no-domainname")
def no_domainname(cfg: dict, call: Call) -> None:
    cfg.pop("domainname", None)
