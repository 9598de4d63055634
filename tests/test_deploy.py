"""The suite beyond one machine (deploy/, docs/cluster.md).

The node check's entrypoint is run for real, against runc, with Sonobuoy's variables and the
host mount pointed at temporary directories; the Containerfile is parsed against the build
context deploy/make-context writes (no image is built here: there is no registry and no base
image); the DaemonSet and the Sonobuoy plugin are validated against the Kubernetes API's schema
(kubernetes-validate's copies, offline), and what the schema cannot say is checked by hand.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
CONTAINERFILE = DEPLOY / "Containerfile"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yaml"
PLUGIN = DEPLOY / "sonobuoy" / "plugin.yaml"
VENV = Path(sys.executable).parent.parent
RUNC = shutil.which("runc")
# The oldest Kubernetes the manifests claim (recursiveReadOnly is 1.30's); the newest release
# kubernetes-validate's schemas cover is checked too.
OLDEST_KUBERNETES = "1.30.0"

needs_runc = pytest.mark.skipif(
    RUNC is None or os.geteuid() != 0, reason="the node check runs the suite: root and runc"
)


def load_yaml_documents(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="kubernetes-validate (the dev extra) brings PyYAML")
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# --- the entrypoint, run for real ------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Any]:
    """A fake node: a host root holding runc behind an absolute symlink (as Debian's
    alternatives or a distribution's /usr/bin -> /usr/local/bin links are), and directories for
    Sonobuoy's results and the work space."""
    host = tmp_path / "host"
    (host / "usr" / "bin").mkdir(parents=True)
    (host / "opt" / "runtimes").mkdir(parents=True)
    real = host / "opt" / "runtimes" / "runc.amd64"
    if RUNC is not None:
        shutil.copy2(os.path.realpath(RUNC), real)
    # Absolute: inside the node check's container /opt/... is the image's, not the host's.
    (host / "usr" / "bin" / "runc").symlink_to("/opt/runtimes/runc.amd64")
    env = {
        **os.environ,
        "BULKHEAD_HOST_ROOT": str(host),
        "BULKHEAD_VENV": str(VENV),
        "TMPDIR": str(tmp_path / "work"),
        "BULKHEAD_PYTEST_ARGS": "-k test_uts_namespace",
        "BULKHEAD_RUNTIME": "runc",
    }
    for leftover in ("SONOBUOY_RESULTS_DIR", "BULKHEAD_CERTIFY", "BULKHEAD_HOLD", "PYTEST_ADDOPTS"):
        env.pop(leftover, None)
    return {"env": env, "host": host, "real": real, "tmp": tmp_path}


def run_entrypoint(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # From a directory with no pytest configuration, as in the image.
    return subprocess.run(
        [str(ENTRYPOINT)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def junit_suite(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, ET.tostring(root)
    return suite


def junit_properties(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def done_target(results: Path) -> Path:
    done = results / "done"
    assert done.is_file(), f"no done file in {sorted(p.name for p in results.iterdir())}"
    target = Path(done.read_text().strip())
    assert target.is_absolute() and target.is_file(), target
    return target


def leftovers(tmp: Path) -> list[str]:
    """Mounts and processes under the test's directory: none may outlive the node check."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    found = [m for m in mounts if m.startswith(str(tmp))]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(tmp) in cmdline:
                found.append(f"pid {proc.name}: {cmdline}")
    return found


@needs_runc
def test_under_sonobuoy_the_junit_report_is_written_and_done_names_it(
    node: dict[str, Any],
) -> None:
    results = node["tmp"] / "results"
    env = {**node["env"], "SONOBUOY_RESULTS_DIR": str(results)}
    done = run_entrypoint(env, node["tmp"])
    assert done.returncode == 0, done.stdout + done.stderr
    target = done_target(results)
    assert target == results / "junit.xml"
    suite = junit_suite(target)
    cases = list(suite.iter("testcase"))
    assert cases and all("uts_namespace" in (c.get("classname") or "") for c in cases), cases
    assert suite.get("failures") == "0" and suite.get("errors") == "0", ET.tostring(suite)
    passed = [c for c in cases if not {e.tag for e in c} & {"failure", "error", "skipped"}]
    assert len(passed) >= 3, ET.tostring(suite)
    # The runtime found under the host root through its absolute link: the host's binary, run
    # under its own name (the suite keeps argv[0]).
    props = junit_properties(suite)
    runtime_path = Path(props["bulkhead_runtime_path"])
    assert runtime_path.name == "runc" and runtime_path.resolve() == node["real"], props
    assert props["bulkhead_runtime_version"].startswith("runc version"), props
    assert f"is {node['real']} on the host" in done.stderr
    assert (results / "exit-code").read_text().strip() == "0"
    assert leftovers(node["tmp"]) == []


@needs_runc
def test_a_failing_runtime_fails_the_node_check_with_the_suites_exit_code(
    node: dict[str, Any],
) -> None:
    # scripts/broken-runtime's no-uts-ns mutant: runc that never makes a UTS namespace. Outside
    # Sonobuoy the reports go to BULKHEAD_REPORT_DIR.
    reports = node["tmp"] / "reports"
    env = {
        **node["env"],
        "BULKHEAD_RUNTIME": str(ROOT / "scripts" / "broken-runtime"),
        "BULKHEAD_MUTANT": "no-uts-ns",
        "BULKHEAD_REAL_RUNTIME": RUNC or "runc",
        "BULKHEAD_REPORT_DIR": str(reports),
        # One quick test the mutant fails (the property tests would shrink for a minute).
        "BULKHEAD_PYTEST_ARGS": "-k test_a_hostname_set_inside_stays_inside",
    }
    done = run_entrypoint(env, node["tmp"])
    assert done.returncode == 1, done.stdout + done.stderr
    suite = junit_suite(reports / "junit.xml")
    assert int(suite.get("failures", "0")) >= 1, ET.tostring(suite)
    summary = (reports / "summary.md").read_text()
    assert "config-linux.namespaces.apply-ns-uts" in summary, summary
    for name in ("report.html", "results.jsonl", "node-check.log"):
        assert (reports / name).stat().st_size > 0, name
    assert (reports / "exit-code").read_text().strip() == "1"
    assert not (reports / "done").exists()
    assert leftovers(node["tmp"]) == []


def test_a_runtime_not_found_is_a_usage_error_reported_to_sonobuoy(
    node: dict[str, Any],
) -> None:
    results = node["tmp"] / "results"
    env = {**node["env"], "SONOBUOY_RESULTS_DIR": str(results), "BULKHEAD_RUNTIME": "no-such-rt"}
    done = run_entrypoint(env, node["tmp"])
    assert done.returncode == 4, done.stdout + done.stderr
    assert "no-such-rt not found under" in done.stderr
    # Sonobuoy gets a report naming the reason rather than waiting for its timeout.
    suite = junit_suite(done_target(results))
    error = suite.find("testcase/error")
    assert error is not None and "no-such-rt not found" in (error.get("message") or "")


@needs_runc
def test_certify_under_sonobuoy_sends_the_certificates_as_one_tarball(
    node: dict[str, Any],
) -> None:
    results = node["tmp"] / "results"
    env = {
        **node["env"],
        "SONOBUOY_RESULTS_DIR": str(results),
        "BULKHEAD_CERTIFY": "1",
        # A path as given under the host root, resolved there.
        "BULKHEAD_RUNTIME": str(node["host"] / "usr" / "bin" / "runc"),
    }
    done = run_entrypoint(env, node["tmp"])
    # A partial run (-k) of a runtime that meets what it ran: certify exits 0.
    assert done.returncode == 0, done.stdout + done.stderr
    target = done_target(results)
    assert target.name.endswith(".tar.gz")
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        cert = json.load(tar.extractfile("bulkhead-certificate/certificate.json"))  # type: ignore[arg-type]
    for name in ("junit.xml", "certificate.json", "certificate.md", "report.html"):
        assert f"bulkhead-certificate/{name}" in names, sorted(names)
    assert cert["runtime"]["version"].startswith("runc version"), cert["runtime"]
    assert "partial run" in cert["verdict"], cert["verdict"]
    assert leftovers(node["tmp"]) == []


@needs_runc
def test_sigterm_reaches_the_suite_which_cleans_up_and_reports(node: dict[str, Any]) -> None:
    # Hold after the run, as the DaemonSet does, and stop it the way the kubelet does: SIGTERM
    # to the container's first process. First during the run: the suite is interrupted
    # (pytest's 2), leaves nothing behind and its JUnit report names what ran.
    results = node["tmp"] / "results"
    env = {
        **node["env"],
        "SONOBUOY_RESULTS_DIR": str(results),
        "BULKHEAD_HOLD": "1",
        # Slow enough to be caught running: the hooks area starts many containers.
        "BULKHEAD_PYTEST_ARGS": "-k test_hooks",
    }
    proc = subprocess.Popen(
        [str(ENTRYPOINT)], env=env, cwd=node["tmp"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Wait until a test has started a container (a bundle directory exists), then stop it.
        bundles = node["tmp"] / "work"
        assert wait_for(lambda: any(bundles.glob("bulkhead-main-*/bundles/*/config.json")))
        proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: (results / "done").exists())
        target = done_target(results)
        assert (results / "exit-code").read_text().strip() == "2"
        suite = junit_suite(target)
        assert list(suite.iter("testcase")), ET.tostring(suite)
        # Held: the pod stays up after `done`, until terminated again.
        time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert leftovers(node["tmp"]) == []


def wait_for(condition: Any, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_entrypoint_is_posix_sh() -> None:
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert os.access(ENTRYPOINT, os.X_OK)
    done = subprocess.run(["dash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- the Containerfile and its build context ------------------------------------------------


def containerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continued lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, f"unterminated instruction: {current}"
    return out


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context the docs describe, made by deploy/make-context (the wheel built with
    this venv's setuptools, nothing fetched)."""
    dest = tmp_path_factory.mktemp("context")
    env = {**os.environ, "PYTHON": sys.executable, "BULKHEAD_PIP_ARGS": "--no-build-isolation"}
    done = subprocess.run(
        [str(DEPLOY / "make-context"), str(dest)], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


def test_every_copy_source_is_in_the_build_context(context: Path) -> None:
    steps = containerfile_instructions(CONTAINERFILE.read_text())
    assert steps[0] == ("FROM", "docker.io/library/debian:bookworm-slim"), steps[0]
    copies = [shlex.split(args) for word, args in steps if word in ("COPY", "ADD")]
    assert copies, "no COPY"
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    used: set[str] = set()
    for args in copies:
        assert not any(a.startswith("--from") for a in args), args
        *sources, _dest = [a for a in args if not a.startswith("--")]
        for source in sources:
            matched = {f for f in files if fnmatch.fnmatchcase(f, source)}
            assert matched, f"COPY {source}: nothing in the context matches ({sorted(files)})"
            used |= matched
    # The context holds what the image takes and nothing more.
    assert used == files, sorted(files - used)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert [f for f in files if f.startswith("dist/")] == [
        f"dist/bulkhead-{version}-py3-none-any.whl"
    ]
    copied = context / "deploy" / "entrypoint.sh"
    assert copied.read_bytes() == ENTRYPOINT.read_bytes() and os.access(copied, os.X_OK)


def test_the_entrypoint_is_the_copied_script_and_the_environment_matches() -> None:
    steps = containerfile_instructions(CONTAINERFILE.read_text())
    entrypoint = [json.loads(args) for word, args in steps if word == "ENTRYPOINT"]
    assert len(entrypoint) == 1 and len(entrypoint[0]) == 1, entrypoint  # exec form
    copy_dest = {
        shlex.split(args)[-1]: shlex.split(args)[-2] for word, args in steps if word == "COPY"
    }
    assert copy_dest.get(entrypoint[0][0]) == "deploy/entrypoint.sh", copy_dest
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for word, args in steps if word == "ENV")))
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert f"python3 -m venv {env['BULKHEAD_VENV']}" in runs
    assert f"{env['BULKHEAD_VENV']}/bin/pip install" in runs
    assert env["BULKHEAD_HOST_ROOT"] == "/host"
    # The cache and the bundles on the volume the manifests mount at /var/lib/bulkhead.
    for name in ("BULKHEAD_CACHE_DIR", "TMPDIR"):
        assert env[name].startswith("/var/lib/bulkhead/"), env
    # What the suite runs on the host side, from Debian's packages (see the Containerfile).
    packages = set(runs.split())
    for package in ("busybox-static", "gcc", "libc6-dev", "iproute2", "util-linux", "procps"):
        assert package in packages, package


# --- the Kubernetes manifests ---------------------------------------------------------------


def kubernetes_validate(resource: dict[str, Any]) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is in the dev extra"
    )
    for version in (OLDEST_KUBERNETES, kv.latest_version()):
        try:
            kv.validate(resource, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{resource['kind']} against Kubernetes {version}: {exc.message}")


def documented_variables() -> set[str]:
    """The variables the entrypoint's header documents (and so reads)."""
    header = ENTRYPOINT.read_text().split("\nset -eu\n", 1)[0]
    return set(re.findall(r"^#   ([A-Z_]+) ", header, re.MULTILINE))


def check_pod(spec: dict[str, Any], container: dict[str, Any], extra_volumes: set[str]) -> None:
    """What the schema cannot say: every mount has its volume, the host's root is read-only,
    the host's namespaces are not shared, and the variables set are the entrypoint's."""
    volumes = {v["name"] for v in spec.get("volumes", [])} | extra_volumes
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for m in mounts.values():
        assert m["name"] in volumes, m
    host = mounts["/host"]
    assert host["readOnly"] is True and host.get("recursiveReadOnly") == "IfPossible", host
    host_volume = next(v for v in spec["volumes"] if v["name"] == host["name"])
    assert host_volume["hostPath"]["path"] == "/", host_volume
    for path in ("/sys/fs/cgroup", "/var/lib/bulkhead", "/run"):
        assert path in mounts and not mounts[path].get("readOnly"), path
    for shared in ("hostPID", "hostIPC", "hostNetwork"):
        assert not spec.get(shared), shared
    assert container["securityContext"]["privileged"] is True
    assert spec["tolerations"] == [{"operator": "Exists"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) <= documented_variables(), set(env) - documented_variables()
    assert env["BULKHEAD_HOLD"] == "1", "a DaemonSet's pods are restarted when they exit"


def test_the_daemonset_matches_the_kubernetes_schema() -> None:
    docs = load_yaml_documents(DAEMONSET)
    assert [d["kind"] for d in docs] == ["Namespace", "DaemonSet"]
    for doc in docs:
        kubernetes_validate(doc)
    namespace, daemonset = docs
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert daemonset["metadata"]["namespace"] == namespace["metadata"]["name"]
    template = daemonset["spec"]["template"]
    selector = daemonset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    spec = template["spec"]
    [container] = spec["containers"]
    check_pod(spec, container, set())
    env = {e["name"]: e.get("value") for e in container["env"]}
    report_dir = env["BULKHEAD_REPORT_DIR"]
    assert report_dir in {m["mountPath"] for m in container["volumeMounts"]}
    # Ready once the entrypoint has written exit-code into the report directory.
    assert container["readinessProbe"]["exec"]["command"] == [
        "test", "-e", f"{report_dir}/exit-code"
    ]  # fmt: skip


def test_the_sonobuoy_plugin_is_a_daemonset_plugin_with_a_valid_container() -> None:
    [plugin] = load_yaml_documents(PLUGIN)
    assert set(plugin) == {"sonobuoy-config", "podSpec", "spec"}, set(plugin)
    config = plugin["sonobuoy-config"]
    # Sonobuoy's keys, by hand (no schema is published for them).
    assert set(config) <= {
        "driver", "plugin-name", "result-format", "result-files", "description",
        "source-url", "skip-cleanup", "url",
    }, set(config)  # fmt: skip
    assert config["driver"] == "DaemonSet"
    assert config["result-format"] == "junit"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", config["plugin-name"]), config
    container = plugin["spec"]
    # Sonobuoy mounts its `results` volume and sets SONOBUOY_RESULTS_DIR to it.
    results = next(m for m in container["volumeMounts"] if m["name"] == "results")
    assert results["mountPath"] == "/tmp/sonobuoy/results"
    spec = plugin["podSpec"]
    assert spec["containers"] == [] and spec["restartPolicy"] == "Always"
    check_pod(spec, container, {"results"})
    # The pod Sonobuoy makes: its podSpec with the plugin's container (and the results volume
    # it adds) is a valid Pod, the container a valid Container.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sonobuoy-bulkhead"},
        "spec": {
            **spec,
            "containers": [container],
            "volumes": [*spec["volumes"], {"name": "results", "emptyDir": {}}],
        },
    }
    kubernetes_validate(pod)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    # Control: strict validation refuses an unknown key, so the checks above can fail.
    [plugin] = load_yaml_documents(PLUGIN)
    container = {**plugin["spec"], "securityContxt": {"privileged": True}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [container], "volumes": []},
    }
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in dev")
    with pytest.raises(kv.ValidationError):
        kv.validate(pod, kv.latest_version(), strict=True)


@pytest.fixture(autouse=True)
def _hostname_is_kept() -> Iterator[None]:
    # The suite's containers rename themselves; a broken runtime must not rename the host.
    before = os.uname().nodename
    yield
    assert os.uname().nodename == before
