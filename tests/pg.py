"""A throwaway PostgreSQL server for tests and benchmarks: `initdb` + `pg_ctl` in a temporary
folder, listening on 127.0.0.1 only, trust auth, fsync off. One fresh database per test.

PostgreSQL refuses to run as root, and test runners (containers, CI) often are root: then the
server runs as an unprivileged user (`nobody` unless POLARIS_TEST_PG_USER names another) through
util-linux `setpriv`, in a folder that user owns. As any other user it simply runs as that user.

POLARIS_TEST_POSTGRES_URL (e.g. postgresql+psycopg://me@127.0.0.1:5432/postgres) uses a server
you already run instead; the tests then create and drop their own databases in it.
"""

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

SERVER_USER = "polaris"


def _bin_path() -> str:
    """PATH plus Debian's versioned server folder (the postgresql package keeps initdb there)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return os.pathsep.join([os.environ.get("PATH", ""), *folders])


def binaries_available() -> bool:
    return all(shutil.which(name, path=_bin_path()) for name in ("initdb", "pg_ctl", "postgres"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """Start with `start()`, get a new empty database URL with `new_database()`, `stop()`."""

    def __init__(self) -> None:
        self.external = os.environ.get("POLARIS_TEST_POSTGRES_URL")
        self.folder: Path | None = None
        self.port: int | None = None
        self._names = itertools.count(1)
        self._run_as: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "PostgresServer":
        if self.external:
            return self
        if not binaries_available():
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not on "
                               "PATH: install postgresql or set POLARIS_TEST_POSTGRES_URL")
        # not pytest's tmp_path: under root that folder is private, and the server user must
        # be able to reach its data directory
        self.folder = Path(tempfile.mkdtemp(prefix="polaris-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(os.environ.get("POLARIS_TEST_PG_USER", "nobody"))
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._run_as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                            "--clear-groups", "--"]
        self.port = _free_port()
        data = self.folder / "data"
        self._run(["initdb", "-D", str(data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync"])
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F "
                   f"-c full_page_writes=off -c max_connections=60")
        self._run(["pg_ctl", "-D", str(data), "-o", options, "-l", str(self.folder / "log"),
                   "-w", "-t", "60", "start"])
        return self

    def stop(self) -> None:
        if self.external or self.folder is None:
            return
        try:
            self._run(["pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                       "stop"])
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _run(self, args: list[str]) -> None:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "PATH": _bin_path()}
        done = subprocess.run([*self._run_as, *args], capture_output=True, text=True, env=env,
                              cwd=self.folder, timeout=120, check=False)
        if done.returncode != 0:
            log = self.folder / "log" if self.folder else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{done.stderr.strip()} {tail}")

    # -- databases ---------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        if self.external:
            return self.external
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A new, empty database on this server; returns its SQLAlchemy URL."""
        name = f"polaris_test_{os.getpid()}_{next(self._names)}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, *statements: str) -> None:
        import psycopg

        url = make_url(self.admin_url)
        with psycopg.connect(host=url.host, port=url.port, user=url.username,
                             password=url.password, dbname=url.database,
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
