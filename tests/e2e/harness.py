"""Black-box harness: starts the real `dagi` binary in a temp dir on a free
loopback port, waits for readiness by polling, talks to it only through its
public interfaces, and stops it by PID.  Logs of a failed test are kept.

Python's standard library only (no pip on these machines)."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

# Set by run.py.
BIN = None
SANITIZED = False
KEEP_DIR = None


def margin(seconds):
    """A deadline with room for slow machines: 5x under sanitizers."""
    return seconds * (5 if SANITIZED else 1)


def wait_until(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + margin(timeout)
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def free_port():
    """A loopback port nobody listens on right now (it may be taken before the
    caller binds it: callers that cannot pass port 0 retry)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_json_file(path):
    """The JSON document another process writes to `path`, or None while it is
    missing or still half-written (nats-server writes its ports file in place,
    not through a rename): the caller polls again, as the product's own
    reader does (src/bus/natsd_files.c)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_text_file(path, complete=lambda text: bool(text)):
    """The text of a file another process writes, or None while it is missing
    or not complete yet (by default: empty)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return text if complete(text) else None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class Node:
    """One `dagi node` process in its own temp dir."""

    def __init__(self, name, config=None, args=(), env=None, tmp=None):
        self.name = name
        self.tmp = tmp or tempfile.mkdtemp(prefix=f"dagi-e2e-{name}-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.tmp, "dagi.yml")
            with open(self.config_path, "w") as f:
                f.write(config)
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("DAGI_CONFIG", None)
        if env:
            self.env.update(env)
        self.proc = None
        self.addr = None
        self.tls_context = None
        self.scheme = "http"

    # --- process ---
    def start(self, wait_ready=True):
        cmd = [BIN, "node", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"]
        if self.config_path:
            cmd += ["--config", self.config_path]
        cmd += self.args
        self.stdout = open(os.path.join(self.tmp, "stdout.log"), "ab")
        self.stderr = open(os.path.join(self.tmp, "stderr.log"), "ab")
        addr_file = os.path.join(self.data_dir, "http.addr")
        if os.path.exists(addr_file):
            os.unlink(addr_file)
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=self.stderr, env=self.env,
                                     stdin=subprocess.DEVNULL)
        if wait_ready:
            self.addr = wait_until(lambda: self._read_addr(addr_file), 10, f"{self.name} to listen")
            wait_until(lambda: self.get("/readyz").status == 200, 10, f"{self.name} /readyz")
        return self

    def _read_addr(self, path):
        if self.proc.poll() is not None:
            raise AssertionError(f"dagi exited with {self.proc.returncode}: {self.stderr_text()[-2000:]}")
        # dagi writes http.addr through a rename; a line ends complete.
        text = read_text_file(path, lambda t: t.endswith("\n"))
        return text.strip().split("://", 1)[-1] or None if text else None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        return self.proc.wait(timeout=margin(timeout))

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=margin(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "stdout", None), getattr(self, "stderr", None)):
            if f:
                f.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stdout_text(self):
        with open(os.path.join(self.tmp, "stdout.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        with open(os.path.join(self.tmp, "stderr.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        out = []
        for line in self.stderr_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    @property
    def admin_key(self):
        with open(os.path.join(self.data_dir, "admin.key")) as f:
            return f.read().strip()

    def auth(self):
        return {"Authorization": "Bearer " + self.admin_key}

    # --- HTTP ---
    @property
    def host_port(self):
        host, port = self.addr.rsplit(":", 1)
        return host, int(port)

    def connection(self, timeout=10):
        host, port = self.host_port
        if self.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=margin(timeout),
                                               context=self.tls_context)
        return http.client.HTTPConnection(host, port, timeout=margin(timeout))

    def request(self, method, path, body=None, headers=None, conn=None, timeout=10):
        own = conn is None
        conn = conn or self.connection(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {})
                headers.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            if own:
                conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def raw_socket(self, timeout=10):
        s = socket.create_connection(self.host_port, timeout=margin(timeout))
        return s

    def cleanup(self, keep):
        self.kill()
        if keep and KEEP_DIR:
            dest = os.path.join(KEEP_DIR, os.path.basename(self.tmp))
            shutil.copytree(self.tmp, dest, dirs_exist_ok=True, ignore_dangling_symlinks=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_dagi(*args, env=None, timeout=30):
    """Runs a short dagi command; returns (exit code, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("DAGI_CONFIG", None)
    if env:
        e.update(env)
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=e,
                       timeout=margin(timeout), stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def read_http_response(sock, timeout=10):
    """Reads one response head (and a Content-Length body) from a raw socket."""
    sock.settimeout(margin(timeout))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest[:n])


def make_self_signed(dir_path):
    """A throwaway certificate for 127.0.0.1, made with openssl(1)."""
    cert = os.path.join(dir_path, "cert.pem")
    key = os.path.join(dir_path, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class NatsServer:
    """A nats-server of the test's own (for nodes joined with bus.url nats://)."""

    def __init__(self, config_text=None, env=None):
        self.tmp = tempfile.mkdtemp(prefix="dagi-e2e-nats-")
        args = ["nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", f"{self.tmp}/js",
                "--ports_file_dir", self.tmp]
        if config_text is not None:
            conf = os.path.join(self.tmp, "nats.conf")
            with open(conf, "w") as f:
                f.write(config_text)
            args += ["-c", conf]
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(os.path.join(self.tmp, "nats.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=e,
                                     stdin=subprocess.DEVNULL)
        self.url = wait_until(self._read_url, 10, "nats-server ports file")

    def _read_url(self):
        if self.proc.poll() is not None:
            raise AssertionError("nats-server exited")
        for name in os.listdir(self.tmp):
            if name.endswith(".ports"):
                doc = read_json_file(os.path.join(self.tmp, name))
                urls = (doc or {}).get("nats") or []
                return urls[0] if urls else None
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class NatsError(Exception):
    pass


class NatsClient:
    """Just enough of the NATS text protocol (with headers) for black-box checks:
    connect with or without credentials, publish, subscribe, request."""

    def __init__(self, url, user=None, password=None, timeout=5):
        host, port = url.split("://", 1)[-1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=margin(timeout))
        # Small writes back to back: without this, Nagle and delayed ACKs add
        # 40 ms to every request.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.inbox = None
        self.sid = 0
        info = self._line()
        if not info.startswith(b"INFO "):
            raise NatsError(info)
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "protocol": 1, "lang": "python-test", "version": "0"}
        if user is not None:
            opts.update(user=user, **{"pass": password})
        self.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        reply = self._line()
        if reply.startswith(b"-ERR"):
            raise NatsError(reply.decode())
        if reply != b"PONG":
            raise NatsError(reply)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def subscribe(self, subject, queue=None):
        self.sid += 1
        q = f" {queue}" if queue else ""
        self.sock.sendall(f"SUB {subject}{q} {self.sid}\r\nPING\r\n".encode())
        return self.sid

    @staticmethod
    def _pub_bytes(subject, payload, reply, headers):
        r = f" {reply}" if reply else ""
        if headers:
            h = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            hb = h.encode()
            return (f"HPUB {subject}{r} {len(hb)} {len(hb) + len(payload)}\r\n".encode() + hb +
                    payload + b"\r\n")
        return f"PUB {subject}{r} {len(payload)}\r\n".encode() + payload + b"\r\n"

    def publish(self, subject, payload=b"", reply=None, headers=None):
        self.sock.sendall(self._pub_bytes(subject, payload, reply, headers))

    def next_msg(self, timeout=5):
        """(subject, headers dict, payload) of the next message; errors raise."""
        self.sock.settimeout(margin(timeout))
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line in (b"PONG", b"+OK"):
                continue
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode())
            parts = line.decode().split()
            if parts[0] == "MSG":
                n = int(parts[-1])
                return parts[1], {}, self._bytes(n)
            if parts[0] == "HMSG":
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total)
                head = raw[:hlen].decode().split("\r\n")
                headers = {"status": head[0][9:].strip()}
                for h in head[1:]:
                    if ":" in h:
                        k, _, v = h.partition(":")
                        headers[k.strip()] = v.strip()
                return parts[1], headers, raw[hlen:]

    def request(self, subject, payload=b"", timeout=5, headers=None):
        # One wildcard inbox subscription serves every request of this client.
        out = b""
        if self.inbox is None:
            self.sid += 1
            self.inbox = f"_INBOX.test{os.getpid()}x{id(self)}"
            out += f"SUB {self.inbox}.* {self.sid}\r\n".encode()
        self.sid += 1
        reply = f"{self.inbox}.{self.sid}"
        self.sock.sendall(out + self._pub_bytes(subject, payload, reply, headers))
        while True:
            subj, headers_in, body = self.next_msg(timeout)
            if subj == reply:
                return subj, headers_in, body

    def close(self):
        self.sock.close()


class PgServer:
    """A throwaway PostgreSQL 15 in a temp dir on a free port.  initdb and
    postgres refuse to run as root, so they run as the postgres user."""

    BIN = "/usr/lib/postgresql/15/bin"

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="dagi-e2e-pg-")
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        os.mkdir(self.data)
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_pg:  # postgres writes its log and socket into tmp too
            subprocess.run(["chown", "postgres:postgres", self.tmp, self.data], check=True)
        subprocess.run(as_pg + [f"{self.BIN}/initdb", "-D", self.data, "-A", "trust", "-U",
                                "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, capture_output=True)
        # The port is free when probed but may be taken before postgres binds
        # it (another test's server): pg_ctl then fails and another is tried.
        for attempt in range(5):
            self.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.tmp} -c fsync=off "
                    "-c track_commit_timestamp=on -c max_connections=100")
            p = subprocess.run(as_pg + [f"{self.BIN}/pg_ctl", "-D", self.data, "-l",
                                        os.path.join(self.tmp, "pg.log"), "-w", "-o", opts,
                                        "start"], capture_output=True)
            if p.returncode == 0:
                break
        else:
            raise AssertionError(f"postgres did not start: {p.stdout!r} {p.stderr!r}")
        self.as_pg = as_pg
        self.psql("CREATE DATABASE dagi")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/dagi"

    def psql(self, sql, db="postgres"):
        p = subprocess.run(self.as_pg + ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                         "postgres", "-d", db, "-At", "-c", sql],
                           check=True, capture_output=True, text=True)
        return p.stdout

    def stop(self):
        subprocess.run(self.as_pg + [f"{self.BIN}/pg_ctl", "-D", self.data, "-m", "immediate",
                                     "stop"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def stream_messages(client, stream, subject):
    """Every message of `subject` in `stream`, in stream order, as
    (seq, headers, data) - read with the JetStream API over the plain protocol."""
    _, _, body = client.request(f"$JS.API.STREAM.INFO.{stream}", b"")
    state = json.loads(body)["state"]
    out = []
    import base64
    for seq in range(state["first_seq"], state["last_seq"] + 1):
        _, _, body = client.request(f"$JS.API.STREAM.MSG.GET.{stream}",
                                    json.dumps({"seq": seq}).encode())
        doc = json.loads(body)
        if "message" not in doc:
            continue
        m = doc["message"]
        if m["subject"] != subject:
            continue
        out.append((m["seq"], m.get("hdrs"), json.loads(base64.b64decode(m["data"]))))
    return out


def embedded_nats_client(node):
    with open(os.path.join(node.data_dir, "nats", "credentials")) as f:
        creds = dict(line.split("=", 1) for line in f.read().split() if "=" in line)
    with open(os.path.join(node.data_dir, "nats", "port")) as f:
        url = f"nats://127.0.0.1:{f.read().strip()}"
    return NatsClient(url, creds["user"], creds["password"])
