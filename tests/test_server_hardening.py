"""The warm server under attack and under load: who answers, slow and malformed clients, floods, bodies
however framed, WebSockets, rotated tokens, TLS, a server that dies as it starts, and bounded logs.

One real server process for the module (unix socket and loopback TCP, `server run`), raw sockets for the
hostile clients, a real second user (`setpriv` to 65534, as root) where another uid is the point, and real
links and folders in a private TMPDIR.  Every loop is bounded; every process a test starts is ended by pid.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oumi_jobs.client import Client, ServerPeerError
from oumi_jobs.errors import ExitCode, UsageError
from oumi_jobs.paths import write_private_file
from oumi_jobs.server.activity import Activity, ServeOptions, ServerSettings
from oumi_jobs.server.app import BODY_TIMEOUT_S, MAX_BODY_BYTES, Guard
from oumi_jobs.server.connections import HEAD_TIMEOUT_S, MAX_WAITING_TCP

from .helpers import wait_until

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _env(home: Path, **extra: str) -> dict[str, str]:
    return os.environ | {"OUMI_JOBS_HOME": str(home), "OUMI_JOBS_SERVER": "off", "PYTHONPATH": str(REPO), **extra}


@dataclass
class Served:
    pid: int
    socket: str
    host: str
    port: int
    token: str
    log: Path
    address: str


def _start(home: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, dict]:
    argv = [sys.executable, "-m", "oumi_jobs", "server", "run", "--host", "127.0.0.1", "--port", "0", *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env or _env(home), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def ready() -> dict | None:
        assert process.poll() is None, f"the server exited {process.returncode}: {log.read_text()}"
        for info in home.rglob("server.json"):
            record = json.loads(info.read_text())
            if record["pid"] == process.pid:
                return record
        return None

    try:
        record: dict = wait_until(ready, timeout=60, interval=0.1)  # type: ignore[assignment]
        wait_until(lambda: _healthz(record["socket"]), timeout=30, interval=0.1)
    except BaseException:
        _end(process)
        raise
    return process, record


def _healthz(socket_path: str) -> bool:
    try:
        return Client.unix(socket_path).get("/healthz", timeout_s=5)["ok"] is True
    except Exception:
        return False


def _end(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module's hostile clients: none of them changes what the next one meets."""
    root = tmp_path_factory.mktemp("hardening")
    process, record = _start(root / "home", root / "server.out")
    try:
        host, port = record["address"].removeprefix("http://").rsplit(":", 1)
        token = next((root / "home").rglob("server/token")).read_text().strip()
        yield Served(process.pid, record["socket"], host, int(port), token, root / "server.out", record["address"])
    finally:
        _end(process)


def _raw(served: Served, unix: bool = False) -> socket.socket:
    if unix:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(served.socket)
    else:
        sock = socket.create_connection((served.host, served.port))
    sock.settimeout(HEAD_TIMEOUT_S + 15)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes (a close with our bytes unread is a reset: what came counts)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _server_doc(served: Served) -> dict:
    document: dict = Client.unix(served.socket).get("/server")
    return document


# -- who answers ---------------------------------------------------------------------------------------------------
IMPOSTOR = """
import socket, sys
with socket.socket(socket.AF_UNIX) as listener:
    listener.bind(sys.argv[1])
    listener.listen(1)
    print("ready", flush=True)
    listener.settimeout(30)
    conn, _ = listener.accept()
    conn.settimeout(3)
    got = b""
    try:
        while chunk := conn.recv(65536):
            got += chunk
    except OSError:
        pass
    print(len(got), flush=True)
"""


def _as_nobody(*argv: str) -> list[str]:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root to run as another user (CI=true: these tests must run)")
        pytest.skip("needs root to run as another user (setpriv to uid 65534)")
    return [
        "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
        "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search", *argv,
    ]  # fmt: skip


def test_the_client_sends_nothing_to_a_socket_of_another_user(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    path = str(shared / "sock")
    impostor = subprocess.Popen(_as_nobody(sys.executable, "-c", IMPOSTOR, path), stdout=subprocess.PIPE, text=True)
    try:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "ready"
        with pytest.raises(ServerPeerError, match="runs as uid 65534") as refused:
            Client.unix(path).get("/api/jobs")
        assert refused.value.exit_code == ExitCode.CLOUD_UNREACHABLE
        assert impostor.stdout.readline().strip() == "0"  # not one byte: no request line, no token
    finally:
        impostor.kill()
        impostor.wait()


@pytest.mark.parametrize("plant", ["link to a folder of ours", "folder of another user", "folder others may enter"])
def test_a_planted_socket_folder_is_refused_never_adopted(tmp_path, plant):
    tmpdir = tmp_path / "t"
    tmpdir.mkdir()
    # A home deep enough that its socket path does not fit a unix socket: the socket goes under TMPDIR.
    home = tmp_path / ("h" * 60) / ("o" * 60)
    folder = tmpdir / f"oumi-jobs-{os.getuid()}"
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    if plant == "link to a folder of ours":
        folder.symlink_to(ours)
    else:
        folder.mkdir(mode=0o700)
        if plant == "folder of another user":
            os.chown(folder, NOBODY, NOBODY)
        else:
            folder.chmod(0o777)
    argv = [sys.executable, "-m", "oumi_jobs", "server", "run", "--idle-timeout", "0"]
    done = subprocess.run(argv, env=_env(home, TMPDIR=str(tmpdir)), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stderr
    assert f"refusing to use {folder}" in done.stderr and "Traceback" not in done.stderr
    assert list(ours.iterdir()) == [] and not [p for p in folder.iterdir() if p.is_socket()]


# -- slow, idle and malformed clients ------------------------------------------------------------------------------
@pytest.mark.parametrize("sent", [b"", b"GET /api/jobs HT"])
def test_a_connection_without_a_whole_request_head_is_closed(served, sent):
    with _raw(served) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert _read_all(sock) == b""  # closed by the server, nothing answered
    assert time.monotonic() - started < HEAD_TIMEOUT_S + 10


def test_a_flood_of_idle_tcp_connections_never_stops_the_owner(served):
    flood: list[socket.socket] = []
    try:
        for _ in range(200):
            flood.append(socket.create_connection((served.host, served.port)))
        # The owner's request on the unix socket is answered while they are all open.
        assert Client.unix(served.socket).get("/healthz", timeout_s=10)["ok"] is True
        refused = 0
        for sock in flood:
            sock.settimeout(10)
            try:
                refused += _read_all(sock).startswith(b"HTTP/1.1 503")
            except OSError:
                pass
        assert refused >= 200 - MAX_WAITING_TCP
    finally:
        for sock in flood:
            sock.close()


def test_a_stalled_body_is_cut_off_and_no_longer_in_flight(served):
    with _raw(served, unix=True) as sock:
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n{\"config\"")  # fmt: skip
        sock.settimeout(BODY_TIMEOUT_S + 15)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert _server_doc(served)["requests_in_flight"] == 0


def test_a_body_is_bounded_by_the_bytes_read_whatever_the_headers_say(served):
    head = (b"POST /api/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 2\r\ntransfer-encoding: chunked\r\n\r\n")  # fmt: skip
    chunk = b"x" * 65536
    body = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * (2 * MAX_BODY_BYTES // len(chunk)) + b"0\r\n\r\n"
    with _raw(served, unix=True) as sock:

        def send() -> None:
            try:
                sock.sendall(head + body)
            except OSError:
                pass  # refused before it was all sent

        sender = threading.Thread(target=send)
        sender.start()
        answer = _read_all(sock)  # read while it sends: the answer comes before the body ends
        sock.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    status = answer.split(b" ", 2)[1]
    assert status in (b"400", b"413"), answer[:300]  # never read whole, and never handed to the app (422)


def test_malformed_requests_are_counted_and_logged_a_few_times_only(served):
    before = _server_doc(served)["requests_rejected"]
    for _ in range(40):
        with _raw(served) as sock:
            sock.sendall(b"\x00\x01 garbage\r\n\r\n")
            _read_all(sock)
    assert _server_doc(served)["requests_rejected"] >= before + 40
    log = served.log.read_text()
    assert "Invalid HTTP request" not in log
    assert log.count("refused ") <= 3, log[-2000:]


# -- one guard for every connection type ---------------------------------------------------------------------------
def _guard(tmp_path: Path) -> tuple[Guard, list[dict], Path]:
    token_file = tmp_path / "token"
    write_private_file(token_file, b"A" * 43 + b"\n")
    reached: list[dict] = []

    async def app(scope, receive, send) -> None:
        reached.append(scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    settings = ServerSettings("v", "http://127.0.0.1:1", "tcp", 0.0, str(token_file), time.time())
    return Guard(app, settings, Activity()), reached, token_file


def _through(guard: Guard, kind: str, token: bytes | None) -> list[dict]:
    headers = [(b"authorization", b"Bearer " + token)] if token is not None else []
    scope = {"type": kind, "server": ("127.0.0.1", 1), "headers": headers, "method": "GET", "path": "/"}
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent


def test_websockets_and_unknown_connection_types_pass_the_same_guard(tmp_path):
    guard, reached, _ = _guard(tmp_path)
    closed = _through(guard, "websocket", None)
    assert reached == [] and closed[0]["type"] == "websocket.close"
    assert _through(guard, "websocket", b"wrong") and reached == []
    _through(guard, "websocket", b"A" * 43)
    assert [scope["type"] for scope in reached] == ["websocket"]
    assert _through(guard, "webtransport", b"A" * 43) == [] and len(reached) == 1


def test_a_refused_token_is_answered_401_with_a_bearer_challenge(tmp_path):
    guard, reached, _ = _guard(tmp_path)
    start = _through(guard, "http", b"wrong")[0]
    headers = dict(start["headers"])
    assert start["status"] == 401 and reached == []
    assert headers[b"www-authenticate"].startswith(b"Bearer") and headers[b"connection"] == b"close"


def test_a_token_rotated_within_one_timestamp_tick_is_seen(tmp_path):
    guard, _, token_file = _guard(tmp_path)
    assert _through(guard, "http", b"A" * 43)[0]["status"] == 200
    before = os.stat(token_file)
    write_private_file(token_file, b"B" * 43 + b"\n")  # the same size
    os.utime(token_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same modification time
    assert _through(guard, "http", b"A" * 43)[0]["status"] == 401
    assert _through(guard, "http", b"B" * 43)[0]["status"] == 200


# -- the cloud adapter's arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cloud": 5, "cluster": "c", "launcher_job_id": "1", "timeout_s": 5}, "cloud"),
        ({"cloud": "c", "cluster": "c", "launcher_job_id": "1", "timeout_s": 1e12}, "timeout_s"),
        ({"cloud": "c", "cluster": "c", "launcher_job_id": "1", "timeout_s": -1}, "timeout_s"),
    ],
)
def test_a_wrong_adapter_argument_is_the_callers_mistake(served, kwargs, field):
    with pytest.raises(UsageError, match=field) as refused:
        Client.unix(served.socket).adapter_call("get_job", kwargs, 5)
    assert refused.value.exit_code == ExitCode.USAGE
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(served.socket)
        sock.settimeout(30)
        body = json.dumps({"kwargs": kwargs}).encode()
        sock.sendall(b"POST /adapter/get_job HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)  # fmt: skip
        assert _read_all(sock).startswith(b"HTTP/1.1 422")


# -- starting ------------------------------------------------------------------------------------------------------
def test_server_start_returns_at_once_when_its_server_dies_and_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "oumi_jobs", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        started = time.monotonic()
        done = subprocess.run(argv, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 40  # not the 60 s start limit
    assert done.returncode == ExitCode.CLOUD_UNREACHABLE, done.stderr
    assert "oumi-jobs server" in done.stderr and "exited as it started" in done.stderr
    assert "cannot listen on 127.0.0.1" in done.stderr and "supervisor" not in done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServeOptions("0.0.0.0", allow_remote=True), "--allow-insecure-remote"),
        (ServeOptions("0.0.0.0"), "--allow-remote"),
        (ServeOptions("127.0.0.1", tls_cert="c.pem"), "go together"),
        (ServeOptions(tls_cert="c.pem", tls_key="k.pem"), "needs --host"),
    ],
)
def test_remote_access_needs_tls_or_says_it_is_insecure(options, message):
    with pytest.raises(UsageError, match=message):
        options.checked()
    assert ServeOptions("0.0.0.0", allow_insecure_remote=True).checked()
    assert ServeOptions("0.0.0.0", allow_remote=True, tls_cert="c", tls_key="k").checked()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oumi-jobs test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


def test_tcp_over_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    home = tmp_path / "home"
    process, record = _start(home, tmp_path / "server.out", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert record["address"].startswith("https://127.0.0.1:")
        token = next(home.rglob("server/token")).read_text().strip()
        with Client.tcp(record["address"], token, ca_file=str(cert)) as client:
            assert client.jobs(local_only=True) == []
        host, port = record["address"].removeprefix("https://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as plain:  # no TLS: nothing in clear
            plain.sendall(f"GET /api/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n".encode())
            try:
                assert not plain.recv(100).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
        assert Client.unix(record["socket"]).get("/healthz")["ok"] is True  # the unix socket: plain, as before
    finally:
        _end(process)


# -- bounded log ---------------------------------------------------------------------------------------------------
ROTATE = """
import logging, os, sys
from pathlib import Path
from oumi_jobs.server import runner
log_file = Path(sys.argv[1])
fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
os.dup2(fd, 2)
runner.LOG_MAX_BYTES = 4096
runner._configure_logging(log_file)
for i in range(400):
    logging.getLogger("oumi_jobs.server").warning("line %d %s", i, "x" * 40)
print("written", file=sys.stderr)
"""


def test_the_server_log_is_rotated_at_its_size_limit(tmp_path):
    log_file = tmp_path / "server.log"
    subprocess.run([sys.executable, "-c", ROTATE, str(log_file)], env=_env(tmp_path / "home"), check=True,
                   timeout=60)  # fmt: skip
    older = log_file.with_name("server.log.1")
    assert log_file.stat().st_size < 4096 + 200 and older.stat().st_size < 4096 + 200
    assert "line 399" in log_file.read_text() and "written" in log_file.read_text()  # stderr follows


# -- streams -------------------------------------------------------------------------------------------------------
def test_stopping_a_stream_wakes_its_reader_and_tells_the_server(tmp_path):
    """A log followed in one thread and stopped from another (a status that read enough of a Slurm log):
    the reader ends, and the server sees its client go away, though no line comes."""
    path = str(tmp_path / "s.sock")
    saw_hang_up = threading.Event()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nline1\n\r\n")
                conn.settimeout(30)
                if conn.recv(1) == b"":  # nothing more is sent: the client hung up
                    saw_hang_up.set()

        server = threading.Thread(target=serve)
        server.start()
        lines, stop = Client.unix(path).stream_lines("GET", "/logs")
        got: list[str] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                got.extend(lines)
            except BaseException as exc:  # a stop must end the reader quietly, not with an error
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        wait_until(lambda: got == ["line1\n"], timeout=10)
        stop()
        reader.join(10)
        server.join(30)
    assert not reader.is_alive() and got == ["line1\n"] and errors == []
    assert saw_hang_up.is_set()
