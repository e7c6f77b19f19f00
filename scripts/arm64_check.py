#!/usr/bin/env python3
"""`make arm64-check`: run emul's compiled parts as aarch64 code, under emulation, on any Linux box.

Builds (once) a Debian arm64 root with debootstrap in a cache directory, copies the working tree
into it, installs it with pip into a venv inside the root (aarch64 wheels of numba, numpy, ...),
and runs inside it, through chroot and qemu-aarch64-static via binfmt_misc:

  1. a probe: the machine is aarch64, numba imports, the compiled clock reads without trapping;
  2. the default scenario with the zero cost profile, one repeat (`emul run --profile zero
     --repeats 1`): every variant's invariant audit must be clean;
  3. the fast test subset (`pytest -m fast`, assigned in tests/conftest.py).

It ends with one verdict line. Exit 0 PASS, 1 FAIL, 2 cannot run (each missing thing is named:
not root, no binfmt_misc / qemu-user-static, no debootstrap, no network, no disk space).
Timings under emulation mean nothing; correctness does.

Stdlib only, run by the host's python3 (it needs no venv). It runs in private mount and PID
namespaces (unshare): no mount outlives it or leaks to the host, the tests see only their own
processes, and nothing it started survives it. Options:
--root DIR (default $EMUL_ARM64_ROOT or ${XDG_CACHE_HOME:-~/.cache}/emul/arm64-root),
--rebuild (throw the root away first), --mirror URL (default $EMUL_ARM64_MIRROR or
http://deb.debian.org/debian).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,python3-pip"
ROOT_STAMP = ".emul-arm64-root"         # written last by a successful build
VENV = "/opt/emul-venv"
SRC = "/src/emul"                        # the copy of the working tree inside the root
OUT = "/var/tmp/emul-arm64-check"        # the run's results, junit XML, logs
DEPS_STAMP = VENV + "/.emul-deps"
HOST_CA = "/etc/ssl/certs/emul-host-ca.crt"   # the host's CA bundle, copied in
AARCH64_MAGIC = "7f454c460201010000000000000000000200b700"    # ELF64 LE, e_machine 183
BINFMT = Path("/proc/sys/fs/binfmt_misc")
MIN_FREE_BYTES = 3 << 30
NS_ENV = "EMUL_ARM64_CHECK_NS"
PASS_ENV = ("TERM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
            "NO_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


def say(msg: str) -> None:
    print(f"arm64-check: {msg}", flush=True)


class CannotRun(Exception):
    """Something outside the project is missing; each arg is one line naming it and the fix."""


def _elapsed(t0: float) -> str:
    s = int(time.monotonic() - t0)
    return f"{s // 60}m{s % 60:02d}s"


# ----------------------------------------------------------------------------- preflight

def default_root() -> Path:
    if os.environ.get("EMUL_ARM64_ROOT"):
        return Path(os.environ["EMUL_ARM64_ROOT"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "emul" / "arm64-root"


def native() -> bool:
    return platform.machine() in ("aarch64", "arm64")


def aarch64_handler() -> dict | None:
    """The enabled binfmt_misc entry that runs aarch64 ELF binaries, if any."""
    if not (BINFMT / "status").exists():
        return None
    for entry in sorted(BINFMT.iterdir()):
        if entry.name in ("status", "register"):
            continue
        try:
            fields = {k.rstrip(":"): v.strip() for k, v in (
                line.split(" ", 1) for line in entry.read_text().splitlines() if " " in line)}
            enabled = entry.read_text().splitlines()[0].strip() == "enabled"
        except (OSError, IndexError, ValueError):
            continue
        if enabled and (fields.get("magic", "").lower() == AARCH64_MAGIC
                        or "aarch64" in entry.name):
            return {"name": entry.name, "interpreter": fields.get("interpreter", ""),
                    "flags": fields.get("flags", "")}
    return None


def setup_binfmt() -> list[str]:
    """Make sure aarch64 binaries run: mount binfmt_misc and enable Debian's qemu-aarch64 entry
    if the packages are installed (what the binfmt-support service does at boot). Returns the
    problems left, one line each."""
    if "binfmt_misc" not in Path("/proc/filesystems").read_text():
        return ["the kernel has no binfmt_misc support (CONFIG_BINFMT_MISC), so it cannot run "
                "aarch64 binaries through qemu"]
    if not (BINFMT / "status").exists():
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return [f"binfmt_misc is not mounted and mounting it failed: {r.stderr.strip()}"]
        say(f"mounted binfmt_misc on {BINFMT}")
    if aarch64_handler() is None and shutil.which("update-binfmts") \
            and Path("/usr/share/binfmts/qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
        if aarch64_handler() is not None:
            say("enabled the qemu-aarch64 binfmt handler (update-binfmts --enable qemu-aarch64)")
    if aarch64_handler() is not None:
        return []
    missing = [p for p in ("qemu-user-static", "binfmt-support")
               if not _dpkg_installed(p)]
    if missing:
        return [f"no binfmt handler for aarch64 binaries: {', '.join(missing)} not installed "
                f"(apt-get install qemu-user-static binfmt-support)"]
    return ["no binfmt handler for aarch64 binaries although qemu-user-static and binfmt-support "
            "are installed: try `update-binfmts --enable qemu-aarch64` and check "
            f"{BINFMT}/qemu-aarch64"]


def _dpkg_installed(pkg: str) -> bool:
    if not shutil.which("dpkg-query"):
        return bool(shutil.which("qemu-aarch64-static")) if pkg == "qemu-user-static" else False
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def check_network(urls: list[str], why: str) -> list[str]:
    """One HEAD request per URL (proxies from the environment apply, as they do for debootstrap
    and pip); a TCP connect alone can succeed against an intercepting proxy."""
    bad = []
    for url in urls:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
                pass
        except urllib.error.HTTPError as e:
            bad.append(f"no usable network to {url} (HTTP {e.code}), needed {why}")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            bad.append(f"no network to {url} ({reason}), needed {why}")
    return bad


def archive_url(mirror: str) -> str:
    return f"{mirror.rstrip('/')}/dists/{SUITE}/Release"


def index_url() -> str:
    return (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/") + "/numba/"


def preflight(root: Path, mirror: str, rebuild: bool) -> None:
    problems: list[str] = []
    if not sys.platform.startswith("linux"):
        raise CannotRun(f"needs Linux (this is {sys.platform})")
    if os.geteuid() != 0:
        raise CannotRun("not root: building the root (debootstrap), mounting and chroot need "
                        "root. Run `sudo make arm64-check`")
    for tool, pkg in (("unshare", "util-linux"), ("mount", "mount")):
        if not shutil.which(tool):
            problems.append(f"`{tool}` not found (apt-get install {pkg})")
    build = rebuild or not (root / ROOT_STAMP).exists()
    if build and not shutil.which("debootstrap"):
        problems.append("debootstrap not installed, needed once to build the aarch64 root "
                        "(apt-get install debootstrap)")
    if not native():
        problems += setup_binfmt()
    if build:
        problems += check_network([archive_url(mirror)], "once, to build the aarch64 root")
        root.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root.parent).free
        if free < MIN_FREE_BYTES:
            problems.append(f"only {free >> 20} MiB free under {root.parent}; the root and its "
                            f"venv need about {MIN_FREE_BYTES >> 30} GiB (or set --root)")
    if problems:
        raise CannotRun(*problems)


# ----------------------------------------------------------------------------- the root

def mounts_under(path: Path) -> list[str]:
    p = str(path.resolve()) if path.exists() else str(path)
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == p or target.startswith(p.rstrip("/") + "/"):
            found.append(target)
    return found


def remove_tree(path: Path) -> None:
    """rm -rf, refusing if anything is mounted under it (a bind of /dev would be emptied)."""
    if not path.exists():
        return
    m = mounts_under(path)
    if m:
        raise CannotRun(f"{path} has mounts under it ({', '.join(m[:3])}): unmount them first")
    shutil.rmtree(path)


def build_root(root: Path, mirror: str) -> None:
    partial = root.with_name(root.name + ".partial")
    log = root.with_name(root.name + ".build.log")
    remove_tree(partial)
    say(f"building a Debian {SUITE} arm64 root in {root} (debootstrap; about 5 minutes under "
        f"emulation; log {log})")
    t0 = time.monotonic()
    cmd = ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={PACKAGES}", SUITE,
           str(partial), mirror]
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-12:]
        hint = ""
        if any("Failed getting release file" in t or "Couldn't download" in t
               or "couldn't download" in t.lower() for t in tail):
            hint = " (the package archive could not be reached: network or --mirror)"
        raise CannotRun(f"debootstrap failed (exit {r.returncode}){hint}; last lines of {log}:",
                        *("    " + t for t in tail))
    (partial / ROOT_STAMP).write_text(json.dumps({"suite": SUITE, "mirror": mirror,
                                                  "built": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    remove_tree(root)
    partial.rename(root)
    say(f"root built in {_elapsed(t0)}")


class Chroot:
    """The root with /proc, /sys, /dev and a private /dev/shm mounted (in this process's private
    mount namespace), and a way to run commands in it."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.mounted: list[Path] = []

    def __enter__(self) -> "Chroot":
        r = self.root
        self._mount(["-t", "proc", "proc"], r / "proc")
        self._mount(["--bind", "/sys"], r / "sys")
        self._mount(["--bind", "/dev"], r / "dev")
        self._mount(["-t", "tmpfs", "-o", "mode=1777", "shm"], r / "dev" / "shm")
        resolv = Path("/etc/resolv.conf")
        if resolv.exists():
            dst = r / "etc" / "resolv.conf"
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            shutil.copyfile(resolv, dst)
        ca = host_ca_bundle()
        if ca:
            # pip in the root trusts what the host trusts (a TLS-intercepting proxy's CA too)
            shutil.copyfile(ca, r / HOST_CA.lstrip("/"))
        h = None if native() else aarch64_handler()
        if h and "F" not in h["flags"] and h["interpreter"]:
            # without binfmt's fix-binary flag the interpreter is opened inside the chroot
            dst = r / h["interpreter"].lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(h["interpreter"]), dst)
        return self

    def _mount(self, args: list[str], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CannotRun(f"mount {' '.join(args)} {target} failed: {r.stderr.strip()}")
        self.mounted.append(target)

    def __exit__(self, *exc) -> None:
        for target in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)

    def env(self) -> dict:
        env = {"HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
        if self.path(HOST_CA).exists():
            env["PIP_CERT"] = env["SSL_CERT_FILE"] = HOST_CA
        return env

    def run(self, argv: list[str], cwd: str = "/", capture: bool = False,
            log: Path | None = None) -> subprocess.CompletedProcess:
        root = str(self.root)

        def enter() -> None:
            os.chroot(root)
            os.chdir(cwd)

        kw: dict = {"env": self.env(), "preexec_fn": enter, "text": True}
        if capture:
            kw.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if log is not None:
            with open(log, "w") as f:
                return subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, **kw)
        return subprocess.run(argv, **kw)

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


def host_ca_bundle() -> str | None:
    for ca in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
               ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if ca and os.path.isfile(ca):
            return ca
    return None


def project_files() -> list[str]:
    """The working tree as a fresh clone plus local edits would have it: tracked and untracked
    files, without what .gitignore excludes (.venv, results, caches)."""
    if (PROJECT / ".git").exists() and shutil.which("git"):
        r = subprocess.run(["git", "-C", str(PROJECT), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, text=True)
        if r.returncode == 0:
            return sorted({f for f in r.stdout.split("\0") if f and (PROJECT / f).is_file()})
    skip = {".git", ".venv", "results", "build", ".pytest_cache", ".hypothesis", "__pycache__"}
    out = []
    for dirpath, dirnames, filenames in os.walk(PROJECT):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
        out += [os.path.relpath(os.path.join(dirpath, f), PROJECT) for f in filenames]
    return sorted(out)


def sync_project(ch: Chroot) -> int:
    dst = ch.path(SRC)
    remove_tree(dst)
    files = project_files()
    for rel in files:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, target)     # keeps mtimes: numba's cache index checks them
    return len(files)


def install_project(ch: Chroot) -> None:
    """A venv inside the root with the project installed editable from SRC, redone only when
    pyproject.toml changes (SRC is recopied every run; the editable install points at it)."""
    want = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = ch.path(DEPS_STAMP)
    if ch.path(VENV + "/bin/python").exists() and stamp.exists() \
            and stamp.read_text().strip() == want:
        return
    problems = check_network([index_url()],
                             "to install the project's aarch64 wheels into the root")
    if problems:
        raise CannotRun(*problems)
    log = ch.path(OUT) / "pip.log"
    say(f"installing the project and its aarch64 wheels into {VENV} inside the root "
        f"(a few minutes under emulation; log {log})")
    t0 = time.monotonic()
    if not ch.path(VENV + "/bin/python").exists():
        r = ch.run(["/usr/bin/python3", "-m", "venv", VENV], capture=True)
        if r.returncode != 0:
            raise CannotRun(f"creating the venv in the root failed: {r.stderr.strip()}")
    r = ch.run([f"{VENV}/bin/python", "-m", "pip", "install", "--disable-pip-version-check",
                "-e", f"{SRC}[test]"], cwd=SRC, log=log)
    if r.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-12:]
        raise CannotRun(f"pip install inside the root failed (exit {r.returncode}); last lines "
                        f"of {log}:", *("    " + t for t in tail))
    stamp.write_text(want + "\n")
    say(f"installed in {_elapsed(t0)}")


# ----------------------------------------------------------------------------- the checks

PROBE = r"""
import json, platform, sys
import numba
from emul.kernel.clock import clock_now
a = clock_now(); b = clock_now()
print(json.dumps({"arch": platform.machine(), "numba": numba.__version__,
                  "python": platform.python_version(), "clock": [a, b]}))
"""


def probe(ch: Chroot) -> dict:
    r = ch.run([f"{VENV}/bin/python", "-c", PROBE], cwd=SRC, capture=True)
    if r.returncode != 0:
        why = "SIGILL: the compiled clock read traps" if r.returncode == -4 else \
            f"exit {r.returncode}"
        return {"ok": False, "why": f"probe failed ({why}): {r.stderr.strip()[-800:]}"}
    info = json.loads(r.stdout.strip().splitlines()[-1])
    info["ok"] = info["arch"] == "aarch64" and info["clock"][1] >= info["clock"][0]
    if not info["ok"]:
        info["why"] = f"probe: arch {info['arch']}, clock reads {info['clock']}"
    return info


def run_scenario(ch: Chroot) -> dict:
    """The default scenario, zero profile, one repeat of each variant."""
    out = f"{OUT}/run"
    remove_tree(ch.path(out))
    say("running the default scenario: emul run --profile zero --repeats 1")
    r = ch.run([f"{VENV}/bin/emul", "run", "--profile", "zero", "--repeats", "1", "-o", out],
               cwd=SRC)
    res = {"exit": r.returncode, "results": ch.path(out) / "results.json"}
    try:
        doc = json.loads(res["results"].read_text())
    except (OSError, ValueError) as e:
        res.update(ok=False, why=f"default scenario exit {r.returncode}, no results.json ({e})")
        return res
    reps = doc.get("repeats", [])
    bad = [x for x in reps if not x.get("audit", {}).get("ok")]
    arch = doc.get("machine", {}).get("arch")
    res["ok"] = (r.returncode == 0 and doc.get("status") == "ok" and reps and not bad
                 and arch == "aarch64")
    if not res["ok"]:
        parts = [f"exit {r.returncode}", f"status {doc.get('status')}"]
        if bad:
            parts.append(f"audit failed in {len(bad)} of {len(reps)} repeats")
        if arch != "aarch64":
            parts.append(f"results.json says arch {arch}")
        res["why"] = "default scenario: " + ", ".join(parts)
    res["repeats"] = len(reps)
    return res


def run_tests(ch: Chroot) -> dict:
    xml = f"{OUT}/junit.xml"
    if ch.path(xml).exists():
        ch.path(xml).unlink()
    say("running the fast tests: pytest -m fast")
    r = ch.run([f"{VENV}/bin/python", "-m", "pytest", "-q", "-m", "fast", "-p",
                "no:cacheprovider", "--durations=5", f"--junitxml={xml}"], cwd=SRC)
    res = {"exit": r.returncode, "tests": 0, "failed": 0, "skipped": 0}
    try:
        suites = ET.parse(ch.path(xml)).getroot()
        for s in suites.iter("testsuite"):
            res["tests"] += int(s.get("tests", 0))
            res["failed"] += int(s.get("failures", 0)) + int(s.get("errors", 0))
            res["skipped"] += int(s.get("skipped", 0))
    except (OSError, ET.ParseError) as e:
        res.update(ok=False, why=f"pytest exit {r.returncode}, no report ({e})")
        return res
    res["ok"] = r.returncode == 0 and res["failed"] == 0 and res["tests"] > 0
    if not res["ok"]:
        res["why"] = (f"{res['failed']} of {res['tests']} tests failed" if res["failed"]
                      else f"pytest exit {r.returncode}")
    return res


# ----------------------------------------------------------------------------- main

def checks(root: Path, mirror: str, rebuild: bool) -> int:
    t0 = time.monotonic()
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = open(root.with_name(root.name + ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise CannotRun(f"another arm64-check is using {root} (lock {lock.name})")
    if rebuild:
        remove_tree(root)
    if not (root / ROOT_STAMP).exists():
        build_root(root, mirror)
    else:
        say(f"reusing the aarch64 root in {root} (--rebuild to start over)")
    with Chroot(root) as ch:
        ch.path(OUT).mkdir(parents=True, exist_ok=True)
        n = sync_project(ch)
        say(f"copied the working tree ({n} files) to {SRC} in the root")
        install_project(ch)
        p = probe(ch)
        if not p["ok"]:
            say(f"FAIL ({p['why']})")
            return 1
        say(f"{p['arch']}, python {p['python']}, numba {p['numba']}: the compiled clock reads "
            f"without trapping")
        sc = run_scenario(ch)
        tests = run_tests(ch)
    say(f"default scenario results: {sc['results']}")
    head = f"{p['arch']}, numba {p['numba']}"
    if sc["ok"] and tests["ok"]:
        skipped = f", {tests['skipped']} skipped" if tests["skipped"] else ""
        say(f"PASS ({head}, {tests['tests'] - tests['skipped']} tests{skipped}, default scenario "
            f"audit clean) in {_elapsed(t0)}")
        return 0
    why = "; ".join(x["why"] for x in (tests, sc) if not x["ok"])
    say(f"FAIL ({head}: {why}) in {_elapsed(t0)}")
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=None, help="where the aarch64 root lives")
    ap.add_argument("--rebuild", action="store_true", help="build the root again")
    ap.add_argument("--mirror", default=os.environ.get("EMUL_ARM64_MIRROR",
                                                       "http://deb.debian.org/debian"))
    args = ap.parse_args(argv)
    root = (args.root or default_root()).absolute()
    try:
        if os.environ.get(NS_ENV) != "1":
            preflight(root, args.mirror, args.rebuild)
            # everything from here runs in private mount and PID namespaces: the mounts vanish
            # with them, the tests see only their own processes (the suite checks that no
            # worker is left running) and nothing started in the root outlives the check
            env = dict(os.environ, **{NS_ENV: "1"})
            cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--",
                   sys.executable, str(Path(__file__).resolve()), "--root", str(root),
                   "--mirror", args.mirror]
            if args.rebuild:
                cmd.append("--rebuild")
            return subprocess.run(cmd, env=env).returncode
        return checks(root, args.mirror, args.rebuild)
    except CannotRun as e:
        lines = list(e.args)
        for line in lines:
            print(f"arm64-check: cannot run: {line}" if not line.startswith("    ") else line,
                  file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 2


if __name__ == "__main__":
    sys.exit(main())
