"""A real OpenLDAP server (slapd) for tests, started from a temp dir on 127.0.0.1 (RECIPES.md).

Fixtures:
- `slapd_server` (session): the server, built and started once per session (per xdist worker).
- `slapd` (function): the same server, running at the start of the test; memberships and user
  attributes changed through its helpers are put back afterwards, and a test that stopped it
  ("LDAP down") gets it restarted on the same port.
- `ldap_enabled` (function): Django settings switched to directory login against `slapd`, built
  by the project's own `ldap_settings_from_env`; `ldap_enabled.configure(**env)` re-applies
  them with other environment values (e.g. a user search instead of a DN template).

The directory (see USERS and GROUPS):
    dc=studio,dc=test
      ou=people      uid=alice, uid=bob, uid=carol (inetOrgPerson, with passwords)
        ou=contractors   uid=erin  (found by a subtree user search, not by the DN template)
      ou=groups      cn=artists, cn=leads, cn=pipeline-admins (mapped to roles by DEFAULT_ROLE_MAP)
                     cn=all-staff (mapped to nothing)
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_project.testing import require_executable, service_missing

try:  # python-ldap is an extra (requirements-ldap.txt): it compiles against libldap.
    import ldap
except ImportError:  # pragma: no cover - depends on the machine
    ldap = None

BASE_DN = "dc=studio,dc=test"
PEOPLE_DN = f"ou=people,{BASE_DN}"
CONTRACTORS_DN = f"ou=contractors,{PEOPLE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "slapd-root-secret"  # noqa: S105 (a throwaway test directory)
# groupOfNames must have at least one member: every group keeps this (non-existent) one, so a
# test can remove the last real member.
PLACEHOLDER_MEMBER = f"cn=placeholder,{BASE_DN}"

SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")
INSTALL_HINT = "apt-get install slapd ldap-utils (see RECIPES.md)"
LDAP_BACKEND = "pipeline_project.accounts.ldap.StudioLDAPBackend"


@dataclass(frozen=True)
class DirectoryUser:
    uid: str
    password: str
    given_name: str
    surname: str
    mail: str
    parent_dn: str = PEOPLE_DN

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{self.parent_dn}"

    @property
    def attributes(self) -> dict[str, str]:
        return {"givenName": self.given_name, "sn": self.surname, "mail": self.mail}


USERS = (
    DirectoryUser("alice", "alice-dir-pw-1", "Alice", "Anders", "alice@studio.test"),
    DirectoryUser("bob", "bob-dir-pw-2", "Bob", "Baker", "bob@studio.test"),
    DirectoryUser("carol", "carol-dir-pw-3", "Carol", "Chen", "carol@studio.test"),
    DirectoryUser("erin", "erin-dir-pw-4", "Erin", "Evans", "erin@contract.test", CONTRACTORS_DN),
)
# group cn → member uids
GROUPS = {
    "artists": ("alice", "bob", "erin"),
    "leads": ("bob",),
    "pipeline-admins": ("carol",),
    "all-staff": ("alice", "bob", "carol"),
}
DEFAULT_ROLE_MAP = ";".join(
    f"{role}=cn={cn},{GROUPS_DN}"
    for role, cn in (("artist", "artists"), ("team_lead", "leads"), ("admin", "pipeline-admins"))
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlapdError(RuntimeError):
    pass


class SlapdServer:
    """One slapd in `workdir`: `build()` once, then `start()`/`stop()` as often as needed."""

    base_dn = BASE_DN
    people_dn = PEOPLE_DN
    groups_dn = GROUPS_DN
    root_dn = ROOT_DN
    root_password = ROOT_PASSWORD

    def __init__(self, workdir: Path, users=USERS, groups=GROUPS):
        self.workdir = Path(workdir)
        self.users = {user.uid: user for user in users}
        self.initial_groups = {cn: tuple(members) for cn, members in groups.items()}
        self.conf = self.workdir / "slapd.conf"
        self.log = self.workdir / "slapd.log"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._password_hashes: dict[str, str] = {}
        self._dirty = False

    # --- addresses ---------------------------------------------------------------------
    @property
    def uri(self) -> str:
        if self.port is None:
            raise SlapdError("slapd has not been started yet")
        return f"ldap://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() else None

    def user(self, uid: str) -> DirectoryUser:
        return self.users[uid]

    def user_dn(self, uid: str) -> str:
        return self.users[uid].dn

    def password(self, uid: str) -> str:
        return self.users[uid].password

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{GROUPS_DN}"

    @property
    def group_dns(self) -> dict[str, str]:
        return {cn: self.group_dn(cn) for cn in self.initial_groups}

    def env(self, **overrides) -> dict[str, str]:
        """LDAP_* environment for `ldap_settings_from_env`; an override of None drops the key."""
        env = {
            "LDAP_SERVER_URI": self.uri,
            "LDAP_USER_DN_TEMPLATE": f"uid=%(user)s,{PEOPLE_DN}",
            "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
            "LDAP_ROLE_MAP": DEFAULT_ROLE_MAP,
            "LDAP_TIMEOUT": "3",
        }
        env.update(overrides)
        return {key: str(value) for key, value in env.items() if value is not None}

    # --- lifecycle ---------------------------------------------------------------------
    def build(self) -> None:
        """Write slapd.conf and load the directory offline with slapadd."""
        slappasswd = require_executable("slappasswd", INSTALL_HINT)
        slapadd = require_executable("slapadd", INSTALL_HINT)
        missing = [s for s in SCHEMAS if not (SCHEMA_DIR / f"{s}.schema").exists()]
        if missing:
            service_missing(f"OpenLDAP schemas {missing} not in {SCHEMA_DIR} ({INSTALL_HINT})")
        module_dir = next((d for d in MODULE_DIRS if Path(d, "back_mdb.la").exists()), None)
        if module_dir is None:
            service_missing(f"slapd's back_mdb module not found in {MODULE_DIRS} ({INSTALL_HINT})")

        def hashed(secret: str) -> str:
            out = subprocess.run(
                [slappasswd, "-h", "{SSHA}", "-s", secret],
                check=True,
                capture_output=True,
                text=True,
                timeout=10,
            )
            return out.stdout.strip()

        db = self.workdir / "db"
        db.mkdir(parents=True, exist_ok=True)
        self._password_hashes = {uid: hashed(u.password) for uid, u in self.users.items()}
        includes = "\n".join(f"include {SCHEMA_DIR / s}.schema" for s in SCHEMAS)
        self.conf.write_text(
            f"""{includes}
pidfile {self.workdir / "slapd.pid"}
argsfile {self.workdir / "slapd.args"}
modulepath {module_dir}
moduleload back_mdb
loglevel none

database mdb
maxsize 67108864
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {hashed(ROOT_PASSWORD)}
directory {db}
index objectClass,uid,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        )
        ldif = self.workdir / "data.ldif"
        ldif.write_text(self._ldif())
        result = subprocess.run(
            [slapadd, "-q", "-f", str(self.conf), "-l", str(ldif)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise SlapdError(f"slapadd failed ({result.returncode}): {result.stderr.strip()}")

    def _ldif(self) -> str:
        entries = [
            [
                f"dn: {BASE_DN}",
                "objectClass: dcObject",
                "objectClass: organization",
                "dc: studio",
                "o: Studio Test",
            ],
        ]
        for dn in (PEOPLE_DN, CONTRACTORS_DN, GROUPS_DN):
            ou = dn.split(",", 1)[0].split("=", 1)[1]
            entries.append([f"dn: {dn}", "objectClass: organizationalUnit", f"ou: {ou}"])
        for uid, user in self.users.items():
            entries.append(
                [
                    f"dn: {user.dn}",
                    "objectClass: inetOrgPerson",
                    f"uid: {uid}",
                    f"cn: {user.given_name} {user.surname}",
                    f"givenName: {user.given_name}",
                    f"sn: {user.surname}",
                    f"mail: {user.mail}",
                    f"userPassword: {self._password_hashes[uid]}",
                ]
            )
        for cn, members in self.initial_groups.items():
            entries.append(
                [f"dn: {self.group_dn(cn)}", "objectClass: groupOfNames", f"cn: {cn}"]
                + [f"member: {dn}" for dn in self._member_dns(members)]
            )
        return "\n\n".join("\n".join(entry) for entry in entries) + "\n"

    def _member_dns(self, uids) -> list[str]:
        return [PLACEHOLDER_MEMBER, *(self.user_dn(uid) for uid in uids)]

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start slapd (no-op when running) and wait until it answers a bind."""
        if self.is_running():
            return
        slapd = require_executable("slapd", INSTALL_HINT)
        # The first start picks a free port; a restart keeps it, as settings already point there.
        attempts = 3 if self.port is None else 1
        for attempt in range(attempts):
            if self.port is None or attempt:
                self.port = free_port()
            with self.log.open("ab") as log:
                # `-d 0` keeps slapd in the foreground: we own its PID, and Ctrl-C reaches it too.
                self._proc = subprocess.Popen(
                    [slapd, "-d", "0", "-f", str(self.conf), "-h", self.uri],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                return
            self.stop()  # exited or hung: never leave one behind before trying again
        tail = self.log.read_text(errors="replace")[-2000:]
        raise SlapdError(f"slapd did not start on {self.uri}; log:\n{tail}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False  # exited: bad config or the port was taken
            try:
                self.connect().unbind_s()
            except ldap.LDAPError:
                time.sleep(0.02)
            else:
                return True
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop slapd by its PID (SIGTERM, then SIGKILL); no-op when it is not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    # --- directory changes (as the rootdn) ---------------------------------------------
    def connect(self, dn: str = ROOT_DN, password: str = ROOT_PASSWORD):
        """A python-ldap connection bound as `dn` (the rootdn by default)."""
        conn = ldap.initialize(self.uri, bytes_mode=False)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
        conn.set_option(ldap.OPT_TIMEOUT, 5)
        conn.simple_bind_s(dn, password)
        return conn

    def _modify(self, dn: str, changes) -> None:
        self._dirty = True
        conn = self.connect()
        try:
            conn.modify_s(dn, changes)
        finally:
            conn.unbind_s()

    def add_member(self, group: str, uid: str) -> None:
        self._modify(self.group_dn(group), [(ldap.MOD_ADD, "member", [self.user_dn(uid).encode()])])

    def remove_member(self, group: str, uid: str) -> None:
        self._modify(
            self.group_dn(group), [(ldap.MOD_DELETE, "member", [self.user_dn(uid).encode()])]
        )

    def members(self, group: str) -> set[str]:
        """The uids in `group`, read back from the directory."""
        conn = self.connect()
        try:
            [(_, attrs)] = conn.search_s(self.group_dn(group), ldap.SCOPE_BASE, attrlist=["member"])
        finally:
            conn.unbind_s()
        by_dn = {user.dn.lower(): uid for uid, user in self.users.items()}
        return {by_dn[m.decode().lower()] for m in attrs["member"] if m.decode().lower() in by_dn}

    def set_attribute(self, uid: str, attribute: str, value: str) -> None:
        """Replace one attribute of a user (e.g. mail, givenName)."""
        self._modify(self.user_dn(uid), [(ldap.MOD_REPLACE, attribute, [value.encode()])])

    def reset(self) -> None:
        """Put memberships and user attributes back as built (after changes through helpers)."""
        if not self._dirty:
            return
        conn = self.connect()
        try:
            for cn, members in self.initial_groups.items():
                dns = [dn.encode() for dn in self._member_dns(members)]
                conn.modify_s(self.group_dn(cn), [(ldap.MOD_REPLACE, "member", dns)])
            for uid, user in self.users.items():
                changes = [
                    (ldap.MOD_REPLACE, attr, [value.encode()])
                    for attr, value in user.attributes.items()
                ]
                changes.append(
                    (ldap.MOD_REPLACE, "userPassword", [self._password_hashes[uid].encode()])
                )
                conn.modify_s(user.dn, changes)
        finally:
            conn.unbind_s()
        self._dirty = False


# --- Django settings ---------------------------------------------------------------------
def ldap_env_readers(env: dict):
    """(env_str, env_bool, env_int) reading `env` instead of os.environ, as settings.py does."""

    def env_str(name, default=""):
        return str(env.get(name, default)).strip()

    def env_bool(name, default=False):
        value = env_str(name)
        return default if not value else value.lower() in {"1", "true", "yes", "on"}

    def env_int(name, default):
        value = env_str(name)
        return int(value) if value else default

    return env_str, env_bool, env_int


def ldap_settings_for(env: dict) -> dict:
    """The AUTH_LDAP_* settings (and LDAP_ROLE_MAP) settings.py would build from `env`."""
    from pipeline_project.accounts.ldap_settings import ldap_settings_from_env

    return ldap_settings_from_env(*ldap_env_readers(env))


class LdapLogin:
    """Directory login switched on in Django settings (via pytest-django's `settings`)."""

    def __init__(self, server: SlapdServer, settings):
        self.server = server
        self._settings = settings
        self._applied: set[str] = set()
        self.env: dict[str, str] = {}
        self.conf: dict = {}

    def configure(self, **env_overrides) -> dict:
        """Apply settings built from `server.env(**env_overrides)`; returns them."""
        self.env = self.server.env(**env_overrides)
        self.conf = ldap_settings_for(self.env)
        for stale in self._applied - self.conf.keys():
            delattr(self._settings, stale)
        for key, value in self.conf.items():
            setattr(self._settings, key, value)
        self._applied = set(self.conf)
        self._settings.LDAP_ENABLED = True
        backends = [b for b in self._settings.AUTHENTICATION_BACKENDS if b != LDAP_BACKEND]
        # Local accounts first, as in settings.py: the break-glass admin never waits on LDAP.
        self._settings.AUTHENTICATION_BACKENDS = [*backends, LDAP_BACKEND]
        return self.conf


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def python_ldap():
    """The python-ldap module; skips (or fails under REQUIRE_SERVICES=1) without it."""
    if ldap is None:
        service_missing("python-ldap not installed (pip install -r requirements-ldap.txt)")
    return ldap


@pytest.fixture(scope="session")
def slapd_server(python_ldap, tmp_path_factory):
    require_executable("slapd", INSTALL_HINT)
    server = SlapdServer(tmp_path_factory.mktemp("slapd"))
    server.build()
    atexit.register(server.stop)  # belt and braces if the session is torn down abruptly
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slapd(slapd_server):
    """The session's slapd, running, with the directory as built; restored after the test."""
    slapd_server.start()
    yield slapd_server
    slapd_server.start()  # the test may have stopped it
    slapd_server.reset()


@pytest.fixture
def ldap_enabled(slapd, settings) -> LdapLogin:
    """Directory login on (DN template, groupOfNames, DEFAULT_ROLE_MAP) against `slapd`."""
    login = LdapLogin(slapd, settings)
    login.configure()
    return login
