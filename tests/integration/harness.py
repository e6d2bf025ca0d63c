"""Test harness that drives the real `parley` binary (Python 3 standard library only).

Every ParleyServer gets its own scratch database and an OS-chosen port, so test modules can run
in parallel (ctest -j). The server's stderr/stdout are captured and appended to failure messages:
a red test should say what the server said, not just which status it returned.

Environment:
  PARLEY_BIN            the binary under test (ctest sets it; defaults to ../../build/parley)
  PARLEY_TEST_PG_URL    superuser libpq URI of a running PostgreSQL (`make test` sets it)

Servers migrate as that superuser (the tables' owner, PARLEY_DB_MIGRATE_URL) and serve as
APP_ROLE (PARLEY_DB_URL), which Row Level Security binds, as in production.
"""
import ctypes
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
from typing import Any, NamedTuple, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BIN = "/usr/lib/postgresql/15/bin"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
BAD = "invalid_request"  # the API's code for 400 (malformed JSON or a bad field)
APP_ROLE = "parley_app"  # the application role of migration 0006 (login, no password: trust auth)


# ---- environment ---------------------------------------------------------------------------

def parley_bin() -> str:
    path = os.environ.get("PARLEY_BIN") or os.path.join(HERE, "..", "..", "build", "parley")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"parley binary not found or not executable at {path}; "
                             "build it and set PARLEY_BIN (ctest and `make test` do this)")
    return path


def pg_url() -> str:
    url = os.environ.get("PARLEY_TEST_PG_URL")
    if not url:
        raise AssertionError("PARLEY_TEST_PG_URL is not set: run the integration tests through "
                             "`make test` (it starts PostgreSQL and sets the variable), or "
                             "export a superuser URL such as "
                             "postgresql://postgres@127.0.0.1:55432/postgres")
    return url


def clean_env(extra: Optional[dict] = None) -> dict:
    """The caller's environment without PARLEY_* (the binary refuses unknown PARLEY_ variables,
    and ctest's PARLEY_BIN is one), plus `extra`. Proxy variables go too: we talk to loopback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PARLEY_") and k.lower() not in ("http_proxy", "https_proxy",
                                                                 "all_proxy")}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def with_database(url: str, dbname: str) -> str:
    """`url` (a libpq URI) pointing at database `dbname` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query,
                                    parts.fragment))


def as_role(url: str, role: str) -> str:
    """`url` (a libpq URI) with user `role` and no password (loopback trust auth)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query,
                                    parts.fragment))


_app_role_servers: set = set()
_app_role_lock = threading.Lock()


def ensure_app_role(admin_url: str) -> None:
    """Creates the login role APP_ROLE on the server of `admin_url` once. Roles are cluster-wide
    and test modules run in parallel: creation tolerates a concurrent one."""
    server = urllib.parse.urlsplit(admin_url).netloc
    with _app_role_lock:
        if server in _app_role_servers:
            return
        psql(admin_url, f"""DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                BEGIN CREATE ROLE {APP_ROLE} LOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
              END IF;
              ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
            END $$""")
        _app_role_servers.add(server)


def psql(url: str, sql: str, timeout: float = 30.0) -> str:
    """Runs `sql` with psql (unaligned, tuples only) and returns stdout; raises with stderr."""
    proc = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True, text=True, timeout=timeout, env=clean_env())
    if proc.returncode != 0:
        raise AssertionError(f"psql failed ({proc.returncode}) for {sql!r}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def random_name(prefix: str = "it") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


class ScratchDatabase:
    """CREATE DATABASE it_<random> on the server of `admin_url`; dropped (FORCE) on exit."""

    def __init__(self, admin_url: Optional[str] = None):
        self.admin_url = admin_url or pg_url()
        self.name = random_name("it")
        self.url = with_database(self.admin_url, self.name)

    def create(self) -> "ScratchDatabase":
        psql(self.admin_url, f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        try:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception:  # the cluster may be down (outage tests): nothing left to clean then
            pass

    def sql(self, statement: str) -> str:
        return psql(self.url, statement)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.drop()


# ---- HTTP ----------------------------------------------------------------------------------

class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage  # case-insensitive .get()
    body: Any                         # parsed JSON when the response is JSON, else text

    def error_code(self) -> Optional[str]:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def describe(self) -> str:
        return f"HTTP {self.status} {self.body!r}"


def http_request(port: int, method: str, path: str, body: Any = None, *,
                 headers: Optional[dict] = None, token: Optional[str] = None,
                 raw: Optional[bytes] = None, content_type: Optional[str] = "application/json",
                 timeout: float = 30.0) -> Response:
    """One request on a fresh connection. `body` is sent as JSON; `raw` as given."""
    hdrs = dict(headers or {})
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
    if data is not None and content_type is not None:
        hdrs.setdefault("Content-Type", content_type)
    if token is not None:
        hdrs.setdefault("Authorization", f"Bearer {token}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        text = payload.decode("utf-8", errors="replace")
        ctype = resp.headers.get("Content-Type", "")
        parsed: Any = text
        if "json" in ctype and text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        return Response(resp.status, resp.headers, parsed)
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple:
    """Writes `data` as is on a fresh connection and reads until the server closes or `timeout`.
    Returns (status or None, response bytes). For requests http.client refuses to send."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            joined = b"".join(chunks)
            head, sep, rest = joined.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is not None and len(rest) >= length:
                    break
    out = b"".join(chunks)
    status = None
    if out.startswith(b"HTTP/1."):
        try:
            status = int(out.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = None
    return status, out


def _die_with_parent() -> None:
    """preexec_fn: the kernel kills the child if the test process dies (ctest timeout, SIGKILL),
    so no orphaned server keeps a port and a database."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---- the server ----------------------------------------------------------------------------

class ParleyServer:
    """Runs `parley serve` on a scratch database and port 0.

    with ParleyServer() as srv:
        r = srv.admin("POST", "/v1/tenants", {"name": "A", "slug": "a"})

    Exiting stops it with SIGTERM and asserts exit code 0 (unless the block already failed),
    then drops the scratch database. `db_url` uses an existing database instead (not dropped).
    `db_url` is the owner (superuser) URL: the server migrates with it and serves as APP_ROLE on
    the same database (`app_role=False` serves as the owner too); `sql()` runs as the owner.
    """

    def __init__(self, env: Optional[dict] = None, db_url: Optional[str] = None,
                 admin_token: Optional[str] = None, master_key: Optional[str] = None,
                 wait_ready: bool = True, app_role: bool = True):
        self.admin_token = admin_token or "adm-" + secrets.token_hex(16)
        self.master_key = master_key or secrets.token_hex(32)
        self.extra_env = dict(env or {})
        self.wait_ready = wait_ready
        self.scratch: Optional[ScratchDatabase] = None
        self.db_url = db_url
        self.app_role = app_role
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.stderr_lines: list = []
        self.stdout_lines: list = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._readers: list = []
        self.exit_code: Optional[int] = None

    # -- life cycle

    @property
    def app_url(self) -> str:
        """What the server serves as (PARLEY_DB_URL)."""
        return as_role(self.db_url, APP_ROLE) if self.app_role else self.db_url

    def env(self) -> dict:
        base = {
            "PARLEY_DB_URL": self.app_url,
            "PARLEY_DB_MIGRATE_URL": self.db_url,
            "PARLEY_ADMIN_TOKEN": self.admin_token,
            "PARLEY_MASTER_KEY": self.master_key,
            "PARLEY_HTTP_ADDRESS": "127.0.0.1",
            "PARLEY_HTTP_PORT": "0",
            "PARLEY_LOG_LEVEL": "info",
            # Many tests send bad credentials on purpose from 127.0.0.1; the failed-auth limit
            # per address has its own tests (test_rate_limits) with small values.
            "PARLEY_RATELIMIT_IP_FAILURE_BURST": "100000",
        }
        base.update(self.extra_env)
        return clean_env(base)

    def start(self) -> "ParleyServer":
        if self.db_url is None:
            self.scratch = ScratchDatabase().create()
            self.db_url = self.scratch.url
        if self.app_role and "PARLEY_DB_URL" not in self.extra_env:
            try:
                ensure_app_role(self.db_url)
            except AssertionError:
                pass  # database unreachable on purpose (outage tests): the server will say so
        self.proc = subprocess.Popen([parley_bin(), "serve"], env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        for stream, sink in ((self.proc.stderr, self.stderr_lines),
                             (self.proc.stdout, self.stdout_lines)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {self.proc.returncode}" if self.proc.poll() is not None
                       else f"did not log 'listening' within {START_TIMEOUT_S:.0f} s")
                self._fail_start(why)
        if self.wait_ready:
            # BUG workaround (see test_lifecycle.StartupRaceTest): right after "listening" the
            # supervisor may not have started the database actors yet, and a request then gets
            # 500 "target actor is not available". Tests start once the node says it is ready.
            while True:
                try:
                    if http_request(self.port, "GET", "/health/ready", timeout=5).status == 200:
                        break
                except OSError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._fail_start(f"did not become ready within {START_TIMEOUT_S:.0f} s")
                time.sleep(0.05)
        return self

    def _fail_start(self, why: str) -> None:
        if self.proc.poll() is not None:
            why = f"exited with {self.proc.returncode}"
        self._kill()
        self._cleanup_db()
        raise AssertionError(f"parley serve {why}\n{self.logs()}")

    def _pump(self, stream, sink) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                sink.append(line)
            if self.port is None and '"listening"' in line:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == "listening" and isinstance(rec.get("port"), int):
                    self.port = rec["port"]
                    self._listening.set()
        stream.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """Waits for the process to end; returns its exit code or None if still running."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._readers:
            t.join(timeout=5)
        return self.exit_code

    def stop(self, check: bool = True) -> int:
        """SIGTERM, wait, and (with check) assert a clean exit 0 within STOP_TIMEOUT_S."""
        try:
            if self.proc is None:
                return 0
            if self.proc.poll() is None:
                self.signal(signal.SIGTERM)
            code = self.wait_exit()
            if code is None:
                self._kill()
                if check:
                    raise AssertionError(f"parley did not exit within {STOP_TIMEOUT_S:.0f} s of "
                                         f"SIGTERM\n{self.logs()}")
                return -9
            if check and code != 0:
                raise AssertionError(f"parley exited with {code} after SIGTERM (expected 0)\n"
                                     f"{self.logs()}")
            return code
        finally:
            self._cleanup_db()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _cleanup_db(self) -> None:
        if self.scratch is not None:
            self.scratch.drop()
            self.scratch = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        # A failing block keeps its own error; a passing one must also stop cleanly.
        self.stop(check=exc_type is None)

    # -- logs

    def logs(self, tail: int = 60) -> str:
        with self._lock:
            err = list(self.stderr_lines)
            out = list(self.stdout_lines)
        text = "---- parley stderr (last %d of %d lines) ----\n" % (min(tail, len(err)), len(err))
        text += "\n".join(err[-tail:])
        if out:
            text += "\n---- parley stdout (last %d of %d lines) ----\n" % (min(tail, len(out)),
                                                                       len(out))
            text += "\n".join(out[-tail:])
        return text

    def log_records(self) -> list:
        """stderr lines parsed as JSON (non-JSON lines are skipped)."""
        out = []
        with self._lock:
            lines = list(self.stderr_lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_for_log(self, msg: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r.get("msg") == msg for r in self.log_records()):
                return True
            time.sleep(0.02)
        return False

    # -- requests

    def request(self, method: str, path: str, body: Any = None, **kw) -> Response:
        return http_request(self.port, method, path, body, **kw)

    def admin(self, method: str, path: str, body: Any = None, **kw) -> Response:
        kw.setdefault("token", self.admin_token)
        return self.request(method, path, body, **kw)

    def sql(self, statement: str) -> str:
        return psql(self.db_url, statement)

    # -- fixtures through the admin API

    def create_tenant(self, name: Optional[str] = None, slug: Optional[str] = None) -> dict:
        slug = slug or "t-" + secrets.token_hex(5)
        r = self.admin("POST", "/v1/tenants", {"name": name or f"Tenant {slug}", "slug": slug})
        self.expect(r, 201, "create tenant")
        return r.body

    def create_api_key(self, tenant_id: str, name: str = "test key") -> dict:
        r = self.admin("POST", f"/v1/tenants/{tenant_id}/api-keys", {"name": name})
        self.expect(r, 201, "create api key")
        return r.body

    def create_channel(self, tenant_id: str, **fields) -> dict:
        body = channel_body(**fields)
        r = self.admin("POST", f"/v1/tenants/{tenant_id}/channels", body)
        self.expect(r, 201, "create channel")
        return r.body

    def expect(self, r: Response, status: int, what: str = "") -> None:
        if r.status != status:
            raise AssertionError(f"{what}: expected HTTP {status}, got {r.describe()}\n"
                                 f"{self.logs(30)}")


def channel_body(**fields) -> dict:
    body = {
        "type": "whatsapp_cloud",
        "phone_number_id": str(secrets.randbelow(10**15) + 10**14),
        "waba_id": str(secrets.randbelow(10**15) + 10**14),
        "display_phone_number": "+1 555 0100",
        "access_token": "EAAG-" + secrets.token_hex(24),
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


class ParleyTestCase(unittest.TestCase):
    """Base class: assertion helpers that append the server's logs to failure messages.
    Subclasses set `server` (one per class is typical: start it in setUpClass)."""

    server: Optional[ParleyServer] = None
    maxDiff = None

    @classmethod
    def start_server(cls, **kw) -> ParleyServer:
        """Starts a server for the class; it is stopped (and its database dropped) even when
        setUpClass fails later. tearDownClass should still call server.stop() to check exit 0."""
        srv = ParleyServer(**kw).start()
        cls.addClassCleanup(srv.stop, False)
        return srv

    def _logs(self, srv: Optional[ParleyServer] = None) -> str:
        srv = srv or self.server
        return "\n" + srv.logs(40) if srv else ""

    def assertStatus(self, r: Response, status: int, what: str = "",
                     srv: Optional[ParleyServer] = None) -> None:
        if r.status != status:
            self.fail(f"{what}: expected HTTP {status}, got {r.describe()}{self._logs(srv)}")

    def assertError(self, r: Response, status: int, code: Optional[str] = None,
                    mentions: Optional[str] = None, what: str = "",
                    srv: Optional[ParleyServer] = None) -> None:
        """`r` is an API error: status, {"error":{"code","message"}}, optional code and a word
        the message must contain (case-insensitive), and the X-Request-Id header."""
        ctx = f"{what}: got {r.describe()}"
        self.assertStatus(r, status, what, srv)
        self.assertIsInstance(r.body, dict, f"{ctx}: error body is not a JSON object")
        err = r.body.get("error")
        self.assertIsInstance(err, dict, f"{ctx}: no 'error' object")
        self.assertIsInstance(err.get("code"), str, f"{ctx}: error.code missing")
        self.assertRegex(err["code"], r"^[a-z][a-z0-9_]*$", f"{ctx}: error.code not snake_case")
        self.assertIsInstance(err.get("message"), str, f"{ctx}: error.message missing")
        self.assertGreater(len(err["message"]), 5, f"{ctx}: error.message is not meaningful")
        if code is not None:
            self.assertEqual(err["code"], code, ctx)
        if mentions is not None:
            self.assertIn(mentions.lower(), err["message"].lower(), ctx)
        self.assertTrue(r.headers.get("X-Request-Id"), f"{ctx}: no X-Request-Id header")


# ---- a private PostgreSQL cluster ----------------------------------------------------------

class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster (initdb as `postgres`, trust auth, loopback, free port)
    for tests that stop and restart the database under a running server."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="parley-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "log")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _as_postgres(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        proc = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True,
                              text=True, timeout=timeout, env=clean_env(), cwd=self.dir)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stdout}{proc.stderr}\n{self.server_log()}")
        return proc

    def server_log(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return "---- postgres log ----\n" + f.read()[-4000:]
        except OSError:
            return ""

    def init(self) -> "PrivatePostgres":
        self._as_postgres(f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                          "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections=50")
        self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-o", opts, "-l", self.logfile,
                          "-w", "-t", "30", "start")
        # A server may be started before the cluster is up: the application role must then be
        # there when it connects.
        ensure_app_role(self.url)

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30",
                          "stop")

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            self.init()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc):
        self.destroy()


def require_environment() -> None:
    """Use as `setUpModule = require_environment`: the whole module fails (not skips) without
    a database or binary, with a message saying what to do."""
    pg_url()
    parley_bin()


# ---- fakes of third-party services (tests/fakes) -------------------------------------------

FAKES_DIR = os.path.abspath(os.path.join(HERE, "..", "fakes"))


def import_fake(module: str = "fake_graph"):
    """Imports a module of tests/fakes (a sibling folder, not on sys.path when the tests run
    from tests/integration), e.g. `fake_graph = import_fake("fake_graph")`."""
    import importlib
    import sys
    if FAKES_DIR not in sys.path:
        sys.path.insert(0, FAKES_DIR)
    return importlib.import_module(module)


class RestartTestCase(ParleyTestCase):
    """For crash tests: one scratch database and one admin token and master key per test, so a
    server started again (start_again) finds everything the killed one committed."""

    SERVER_ENV: dict = {}

    def setUp(self):
        self.db = ScratchDatabase().create()
        self.addCleanup(self.db.drop)
        self.admin_token = "adm-" + secrets.token_hex(16)
        self.master_key = secrets.token_hex(32)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            if s.alive():
                s.stop(check=False)

    def start(self) -> ParleyServer:
        srv = ParleyServer(env=self.SERVER_ENV, db_url=self.db.url, admin_token=self.admin_token,
                           master_key=self.master_key).start()
        self.servers.append(srv)
        return srv
