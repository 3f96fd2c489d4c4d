"""The Asterisk test rig: Asterisk 22 + SIPp in a cached Debian sid chroot.

Debian bookworm has no Asterisk, so the rig bootstraps a sid root once
(``debootstrap``, about 1.5 minutes, ~570 MB), caches it outside the repo and
runs ``asterisk -f`` chrooted into it on loopback ports. The same ``dialplan/``
files admins copy are installed into it, with ``@NAME@`` placeholders filled.

Used by ``ivr rig up|down|status``, the e2e tests and ``ivr demo``. All methods
block (subprocesses, HTTP polling): call them from a thread when inside a loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx

DEFAULT_ROOT = Path("/var/cache/kanaal/rig")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("asterisk", "asterisk-modules", "sip-tester")
# written last, inside the build dir, right before the atomic rename: a root
# without it is an interrupted build, never a cache
COMPLETE_MARKER = ".kanaal-rig-complete"
STATE_FILE = "run/kanaal-rig.json"  # relative to the root
ASTERISK_LOG = "var/log/asterisk/kanaal-rig.out"
# Asterisk writes into these as the asterisk user (-U/-G drop root)
ASTERISK_DIRS = (
    "etc/asterisk",
    "var/lib/asterisk",
    "var/log/asterisk",
    "var/spool/asterisk",
    "var/spool/asterisk/kanaal",  # diagnostics extension 603 records here
    "var/spool/asterisk/recording",  # ARI recordings (the survey's follow-up answer)
    "run/asterisk",
    "var/cache/asterisk",
)
_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


class RigError(Exception):
    """The rig could not be built, started or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class RigPorts:
    """Loopback ports of one rig; chosen to stay clear of a real PBX's defaults."""

    sip: int = 5070  # PJSIP UDP transport
    http: int = 8088  # HTTP server: ARI REST + WebSocket
    ami: int = 5039
    agi: int = 4573  # where the dialplan's AGI() connects (the FastAGI server)
    agent_base: int = 5081  # agentN is reached at agent_base + N - 1 (SIPp UAS)

    def agent(self, n: int) -> int:
        """UDP port the SIPp UAS for agent ``n`` (1-based) listens on."""
        return self.agent_base + n - 1


@dataclass(frozen=True, slots=True)
class RigStatus:
    """What ``status()`` found."""

    root: Path
    built: bool
    running: bool
    ari_ok: bool
    pid: int | None
    ports: RigPorts | None
    detail: str = ""

    def describe(self) -> str:
        """Human-readable, multi-line summary (for ``ivr rig status``)."""
        lines = [
            f"root:    {self.root} ({'built' if self.built else 'not built'})",
            f"asterisk: {'running pid ' + str(self.pid) if self.running else 'stopped'}",
        ]
        if self.ports is not None:
            p = self.ports
            lines.append(
                f"ports:   sip udp {p.sip}, ari/http {p.http}, ami {p.ami}, agi {p.agi},"
                f" agents {p.agent(1)}-{p.agent(4)}"
            )
        lines.append(f"ari:     {'answering' if self.ari_ok else 'not answering'}")
        if self.detail:
            lines.append(f"detail:  {self.detail}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class RigCredentials:
    """Users the rig's configs define (ARI for the app, AMI for screen-pop)."""

    ari_user: str = "ivr"
    ari_password: str = "ivr-secret"  # = Settings.ari_password default
    ami_user: str = "ivr"
    ami_password: str = "kanaal"
    stasis_app: str = "ivr"


SECOND_PORT_OFFSET = 200  # the second Asterisk's ports: the first's plus this


def rig_from_env(environ: Mapping[str, str] | None = None,
                 log: Callable[[str], None] = print) -> Rig:
    """The rig named by ``KANAAL_RIG_ROOT`` and ``KANAAL_RIG_*_PORT`` (else the cached one).

    The test harness, benchmarks and node processes read these, not library code:
    CI or a developer can move the cache or the ports without editing anything.
    """
    env = os.environ if environ is None else environ
    ports = RigPorts(
        sip=int(env.get("KANAAL_RIG_SIP_PORT", "5070")),
        http=int(env.get("KANAAL_RIG_HTTP_PORT", "8088")),
        ami=int(env.get("KANAAL_RIG_AMI_PORT", "5039")),
        agi=int(env.get("KANAAL_RIG_AGI_PORT", "4573")),
        agent_base=int(env.get("KANAAL_RIG_AGENT_BASE_PORT", "5081")),
    )
    return Rig(root=Path(env.get("KANAAL_RIG_ROOT", str(DEFAULT_ROOT))), ports=ports, log=log)


def second_rig_of(first: Rig, environ: Mapping[str, str] | None = None) -> Rig:
    """The second Asterisk of a two-Asterisk rig (``ivr rig up --asterisks 2``).

    Its own root (``KANAAL_RIG2_ROOT``, default the first's path plus ``-2``), cloned
    from the first root rather than bootstrapped again, and its own loopback ports
    (``KANAAL_RIG2_*_PORT``, default the first's plus 200). A second root rather than a
    second config/run dir in the same chroot: ``asterisk -rx``, the state file and the
    /proc mount all stay as they are for one Asterisk.
    """
    env = os.environ if environ is None else environ
    p, off = first.ports, SECOND_PORT_OFFSET
    ports = RigPorts(
        sip=int(env.get("KANAAL_RIG2_SIP_PORT", str(p.sip + off))),
        http=int(env.get("KANAAL_RIG2_HTTP_PORT", str(p.http + off))),
        ami=int(env.get("KANAAL_RIG2_AMI_PORT", str(p.ami + off))),
        agi=int(env.get("KANAAL_RIG2_AGI_PORT", str(p.agi + off))),
        agent_base=int(env.get("KANAAL_RIG2_AGENT_BASE_PORT", str(p.agent_base + off))),
    )
    root = Path(env.get("KANAAL_RIG2_ROOT", str(first.root) + "-2"))
    return replace(first, root=root, ports=ports, clone_from=first.root)


def rigs_from_env(count: int, environ: Mapping[str, str] | None = None,
                  log: Callable[[str], None] = print) -> list[Rig]:
    """One or two rigs (``--asterisks``): the first from ``KANAAL_RIG_*``, then its pair."""
    if count not in (1, 2):
        raise RigError(f"the rig runs 1 or 2 Asterisks, not {count}")
    first = rig_from_env(environ, log)
    return [first] if count == 1 else [first, second_rig_of(first, environ)]


def default_config_dir() -> Path:
    """The repo's ``dialplan/`` directory (the files admins copy)."""
    return Path(__file__).resolve().parents[2] / "dialplan"


def render_config(text: str, values: Mapping[str, str]) -> str:
    """Fill ``@NAME@`` placeholders; an unknown one is an error, not a silent blank."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(0).strip("@")
        if key not in values:
            raise RigError(f"no value for placeholder {m.group(0)}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


@dataclass
class Rig:
    """One Asterisk rig rooted at ``root`` (a debootstrapped sid tree).

    ``up()`` builds the root if needed, installs the configs, starts Asterisk
    and waits for ARI; if a rig with the same ports is already running from this
    root it is reused and ``owned`` stays False (so a test session does not stop
    a rig someone started with ``ivr rig up``).
    """

    root: Path = DEFAULT_ROOT
    ports: RigPorts = field(default_factory=RigPorts)
    credentials: RigCredentials = field(default_factory=RigCredentials)
    config_dir: Path = field(default_factory=default_config_dir)
    mirror: str = DEFAULT_MIRROR
    suite: str = "sid"
    max_call_s: int = 900
    start_timeout_s: float = 90.0
    build_timeout_s: float = 1800.0
    log: Callable[[str], None] = field(default=lambda _msg: None)
    # a built root to copy instead of bootstrapping (the second Asterisk of a pair)
    clone_from: Path | None = None
    owned: bool = field(default=False, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ paths

    @property
    def ari_url(self) -> str:
        """Base URL of the HTTP server (ARI is under ``/ari``)."""
        return f"http://127.0.0.1:{self.ports.http}"

    def host_path(self, path_in_root: str | Path) -> Path:
        """Where a path inside the root lives on the host."""
        return self.root / str(path_in_root).lstrip("/")

    @property
    def built(self) -> bool:
        return (self.root / COMPLETE_MARKER).is_file()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # a lock file next to the root: concurrent test processes (xdist, two
        # engineers' sessions) serialise on build/up/down instead of racing
        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.root.parent / f"{self.root.name}.lock"
        with lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ build

    def build(self) -> None:
        """Bootstrap the sid root unless a complete one is cached."""
        if self.built:
            return
        with self._lock():
            if self.built:  # another process finished it while we waited
                return
            self._build_locked()

    def _build_locked(self) -> None:
        if self.clone_from is not None and (self.clone_from / COMPLETE_MARKER).is_file():
            self._clone_locked(self.clone_from)
            return
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise RigError("debootstrap is not installed (apt-get install debootstrap)")
        if os.geteuid() != 0:
            raise RigError("building the rig needs root (debootstrap, chroot, mount)")
        parent = self.root.parent
        for stale in parent.glob(f".{self.root.name}.build-*"):
            self.log(f"removing interrupted build {stale}")
            _unmount_under(stale)
            shutil.rmtree(stale, ignore_errors=True)
        if self.root.exists():  # incomplete root from an older layout
            _unmount_under(self.root)
            shutil.rmtree(self.root)
        tmp = parent / f".{self.root.name}.build-{os.getpid()}"
        cmd = [
            debootstrap,
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            self.suite,
            str(tmp),
            self.mirror,
        ]
        self.log("bootstrapping " + " ".join(cmd) + " (about 1.5 min)")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.build_timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            _unmount_under(tmp)
            raise RigError(f"debootstrap took over {self.build_timeout_s:.0f}s") from exc
        if proc.returncode != 0:
            _unmount_under(tmp)
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RigError(f"debootstrap failed ({proc.returncode}):\n{tail}")
        _unmount_under(tmp)
        (tmp / COMPLETE_MARKER).write_text(" ".join(cmd[1:4]) + "\n")
        os.rename(tmp, self.root)
        self.log(f"rig root built in {time.monotonic() - t0:.0f}s at {self.root}")

    def _clone_locked(self, source: Path) -> None:
        """Copy a built root (seconds, no network): the second Asterisk of a pair."""
        tmp = self.root.parent / f".{self.root.name}.build-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.monotonic()
        # --one-file-system: not the source's mounted /proc (its Asterisk may be running)
        proc = subprocess.run(["cp", "-a", "--one-file-system", f"{source}/.", str(tmp)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RigError(f"copying {source} failed: {proc.stderr.strip()[-500:]}")
        (tmp / "proc").mkdir(exist_ok=True)
        for stale in (STATE_FILE, ASTERISK_LOG):  # the source's run, not this one's
            with contextlib.suppress(FileNotFoundError):
                (tmp / stale).unlink()
        if self.root.exists():
            _unmount_under(self.root)
            shutil.rmtree(self.root)
        os.rename(tmp, self.root)
        self.log(f"rig root cloned from {source} in {time.monotonic() - t0:.0f}s")

    # ---------------------------------------------------------------- configs

    def config_values(self) -> dict[str, str]:
        """Placeholder values for the dialplan/ templates."""
        p, c = self.ports, self.credentials
        values = {
            "SIP_BIND": "127.0.0.1",
            "SIP_PORT": str(p.sip),
            "HTTP_BIND": "127.0.0.1",
            "HTTP_PORT": str(p.http),
            "AMI_BIND": "127.0.0.1",
            "AMI_PORT": str(p.ami),
            "AMI_USER": c.ami_user,
            "AMI_PASSWORD": c.ami_password,
            "ARI_USER": c.ari_user,
            "ARI_PASSWORD": c.ari_password,
            "STASIS_APP": c.stasis_app,
            "AGI_HOST": "127.0.0.1",
            "AGI_PORT": str(p.agi),
            "AGENT_HOST": "127.0.0.1",
            "CALLER_MATCH": "127.0.0.1",
            "MAX_CALL_S": str(self.max_call_s),
        }
        for n in range(1, 5):
            values[f"AGENT{n}_PORT"] = str(p.agent(n))
        return values

    def install_configs(self) -> list[Path]:
        """Render ``dialplan/*.conf`` into ROOT/etc/asterisk; returns the files written."""
        if not self.config_dir.is_dir():
            raise RigError(f"config dir {self.config_dir} not found")
        etc = self.host_path("etc/asterisk")
        values = self.config_values()
        written: list[Path] = []
        for src in sorted(self.config_dir.glob("*.conf")):
            dst = etc / src.name
            dst.write_text(render_config(src.read_text(), values))
            written.append(dst)
        # Debian's asterisk.conf marks [directories](!) as a template, so its
        # paths are ignored; the compiled-in defaults match, but make it a real
        # section so the file means what it says.
        ast_conf = etc / "asterisk.conf"
        if ast_conf.is_file():
            text = ast_conf.read_text()
            ast_conf.write_text(text.replace("[directories](!)", "[directories]"))
        return written

    def _chown_dirs(self) -> None:
        for d in ASTERISK_DIRS:
            self.host_path(d).mkdir(parents=True, exist_ok=True)
        proc = self.run_in_root(
            ["chown", "-R", "asterisk:asterisk", *("/" + d for d in ASTERISK_DIRS)], timeout=60
        )
        if proc.returncode != 0:
            raise RigError(f"chown in rig failed: {proc.stderr.strip()}")

    def _mount_proc(self) -> None:
        target = self.host_path("proc")
        if _is_mounted(target):
            return
        proc = subprocess.run(
            ["mount", "-t", "proc", "proc", str(target)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RigError(f"mounting proc in rig failed: {proc.stderr.strip()}")

    # -------------------------------------------------------------- lifecycle

    def up(self) -> RigStatus:
        """Build if needed, start Asterisk and wait until ARI answers."""
        self.build()
        with self._lock():
            current = self.status()
            if current.running:
                if current.ports != self.ports:
                    raise RigError(
                        f"a rig is already running from {self.root} with other ports "
                        f"({current.ports}); run `ivr rig down` first"
                    )
                if self._ari_status() == 401:
                    raise RigError(
                        f"the running rig rejects ARI user {self.credentials.ari_user!r} "
                        "(started with other credentials); run `ivr rig down` first"
                    )
                if not current.ari_ok and not self._wait_ari(current.pid):
                    raise RigError("rig is running but ARI does not answer: " + self._log_tail())
                self.log(f"reusing running rig (pid {current.pid})")
                return self.status()
            self._start_locked()
        return self.status()

    def _start_locked(self) -> None:
        self._check_ports_free()
        self.install_configs()
        self._chown_dirs()
        self._mount_proc()
        log_path = self.host_path(ASTERISK_LOG)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            # -f: stay in the foreground so we own the pid; -n: no ANSI colours
            self._proc = subprocess.Popen(
                ["chroot", str(self.root), "asterisk", "-f", "-n", "-U", "asterisk",
                 "-G", "asterisk"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the `ivr rig up` process
            )
        self._write_state(self._proc.pid)
        self.owned = True
        self.log(f"asterisk started (pid {self._proc.pid}), waiting for ARI")
        if not self._wait_ari(self._proc.pid):
            tail = self._log_tail()
            self._stop_locked()
            raise RigError(f"ARI did not answer within {self.start_timeout_s:.0f}s:\n{tail}")

    def down(self) -> None:
        """Stop Asterisk (``core stop now``, then signals) and unmount proc."""
        with self._lock():
            self._stop_locked()

    def _stop_locked(self) -> None:
        state = self._read_state()
        pid = self._proc.pid if self._proc is not None else state.get("pid")
        if isinstance(pid, int) and _alive(pid):
            self.run_in_root(["asterisk", "-rx", "core stop now"], timeout=15)
            if not self._wait_exit(pid, 10.0):
                _signal(pid, signal.SIGTERM)
                if not self._wait_exit(pid, 5.0):
                    _signal(pid, signal.SIGKILL)
                    self._wait_exit(pid, 5.0)
        self._proc = None
        self.owned = False
        with contextlib.suppress(FileNotFoundError):
            self.host_path(STATE_FILE).unlink()
        _unmount_under(self.root)

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:  # reaps our own child
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.1)
        return False

    def _wait_ari(self, pid: int | None) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.ari_ok():
                return True
            if pid is not None and not _alive(pid):
                return False
            if self._proc is not None and self._proc.poll() is not None:
                return False
            time.sleep(0.25)
        return False

    def ari_ok(self) -> bool:
        """True when ``GET /ari/asterisk/info`` answers 200 for the configured user."""
        return self._ari_status() == 200

    def _ari_status(self) -> int | None:
        c = self.credentials
        try:
            r = httpx.get(
                f"{self.ari_url}/ari/asterisk/info",
                auth=(c.ari_user, c.ari_password), timeout=2.0,
            )
        except httpx.HTTPError:
            return None
        return r.status_code

    def status(self) -> RigStatus:
        """Built? Running? Does ARI answer?"""
        state = self._read_state()
        pid = state.get("pid")
        ports = None
        raw_ports = state.get("ports")
        if isinstance(raw_ports, dict):
            try:
                ports = RigPorts(**raw_ports)
            except TypeError:  # state file from another version
                ports = None
        running = isinstance(pid, int) and _alive(pid) and _is_asterisk(pid)
        ari = running and ports is not None and Rig(
            root=self.root, ports=ports, credentials=self.credentials
        ).ari_ok()
        detail = ""
        if state and not running:
            detail = "stale state file (asterisk is gone)"
        return RigStatus(
            root=self.root,
            built=self.built,
            running=running,
            ari_ok=ari,
            pid=pid if running and isinstance(pid, int) else None,
            ports=ports if running else None,
            detail=detail,
        )

    # ---------------------------------------------------------------- helpers

    def run_in_root(
        self, cmd: Sequence[str], *, timeout: float | None = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` chrooted into the rig; never raises on a non-zero exit."""
        try:
            return subprocess.run(
                ["chroot", str(self.root), *cmd],
                capture_output=True, text=True, timeout=timeout, input=input, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(
                list(cmd), 124, _text(exc.stdout), _text(exc.stderr) + "\n(timed out)"
            )

    def asterisk_cli(self, command: str, *, timeout: float = 15) -> str:
        """Run an Asterisk CLI command (``asterisk -rx``) and return its output."""
        proc = self.run_in_root(["asterisk", "-rx", command], timeout=timeout)
        if proc.returncode != 0:
            raise RigError(f"asterisk -rx {command!r} failed: {proc.stderr.strip()}")
        return proc.stdout

    def reload(self) -> None:
        """Reinstall the configs into a running rig and reload them."""
        self.install_configs()
        self._chown_dirs()
        self.asterisk_cli("core reload")

    def _check_ports_free(self) -> None:
        p = self.ports
        busy = [
            f"{kind} {port}"
            for kind, port, sock_type in (
                ("udp", p.sip, socket.SOCK_DGRAM),
                ("tcp", p.http, socket.SOCK_STREAM),
                ("tcp", p.ami, socket.SOCK_STREAM),
            )
            if not _port_free(port, sock_type)
        ]
        if busy:
            raise RigError("rig ports already in use on 127.0.0.1: " + ", ".join(busy))

    def _write_state(self, pid: int) -> None:
        path = self.host_path(STATE_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": pid, "ports": asdict(self.ports)}))

    def _read_state(self) -> dict[str, object]:
        try:
            data = json.loads(self.host_path(STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.host_path(ASTERISK_LOG).read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no asterisk output)"


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still accepts signal 0 but is gone for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_asterisk(pid: int) -> bool:
    try:
        return b"asterisk" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _port_free(port: int, sock_type: int) -> bool:
    with socket.socket(socket.AF_INET, sock_type) as s:
        if sock_type == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) if path.exists() else str(path)
    found = []
    with open("/proc/mounts") as fh:
        for line in fh:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    return found


def _is_mounted(path: Path) -> bool:
    return str(path.resolve()) in _mounts_under(path)


def _unmount_under(path: Path) -> None:
    # deepest first; lazy so a leftover sipp holding /proc cannot block `down`
    for target in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
