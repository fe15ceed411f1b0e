#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the real provider (loopback only).

    fault_proxy.py --listen PORT --control PORT --upstream http://127.0.0.1:N
                   [--lifetime SECONDS] [--log FILE]

Requests to the listening port are forwarded to the upstream provider, or
not, according to the current mode.  The mode is switched at run time on the
control port:

    GET /mode/NAME[?ms=N&only=FILTER&size=BYTES]   switch (answers when applied)
    GET /stats                                     counters, as JSON (max_inflight:
                                                   the most requests held at once
                                                   since the last mode change)
    GET /health                                    200

Modes (each answers every request with "Connection: close", so that a mode
change applies to the very next request):

    pass              forward, answer as the provider did
    refuse            close the listening socket: connections are refused
                      (it is opened again by the next mode change)
    hang              accept and read the request, never answer
    delay             wait ms (default 1000) then forward; the request goes
                      to the provider even when the client gave up meanwhile
    http500, http503  that HTTP status, a text body; nothing forwarded
    nonjson           200 with an HTML body; nothing forwarded
    truncated         forward, then send the headers and half the body and
                      close (the provider has committed)
    huge              200 with a JSON body of size bytes (default 12 MB);
                      nothing forwarded
    rpcerror          a well-formed JSON-RPC error of a kind no client
                      knows; nothing forwarded
    commit_then_drop  forward (the provider commits and charges), then close
                      the connection without a byte of answer
    commit_then_hang  forward, then never answer (the client times out after
                      the provider committed)

only=FILTER limits the fault to requests whose path contains FILTER, with
the shorthands enrich (/lead_enrichment_email), mining
(/lead_mining_request) and balance (/iap/1/balance); other requests are
forwarded.  refuse cannot be limited (it acts before any path is read).

Everything listens on 127.0.0.1, and the process exits by itself after
--lifetime seconds (default 900).
"""
import argparse
import http.client
import json
import os
import select
import socket
import sys
import threading
import time
import urllib.parse

FILTERS = {
    "enrich": "/lead_enrichment_email",
    "mining": "/lead_mining_request",
    "balance": "/iap/1/balance",
}
MODES = ("pass", "refuse", "hang", "delay", "http500", "http503", "nonjson",
         "truncated", "huge", "rpcerror", "commit_then_drop", "commit_then_hang")
MAX_HEADER = 65536


class State:
    """The current mode and the counters, shared by every thread."""

    def __init__(self):
        self.lock = threading.Condition()
        self.mode = "pass"
        self.only = None
        self.ms = 1000
        self.size = 12 * 1024 * 1024
        self.listening = False
        self.generation = 0         # bumped by each mode change
        self.applied = -1           # generation the listener has acted on
        self.counts = {}            # "mode path" -> requests
        self.forwarded = {}         # path -> requests sent to the provider
        self.inflight = 0
        self.max_inflight = 0       # since the last mode change
        self.mode_changes = 0

    def snapshot(self):
        with self.lock:
            return {"mode": self.mode, "only": self.only, "ms": self.ms,
                    "size": self.size, "listening": self.listening,
                    "counts": dict(self.counts), "forwarded": dict(self.forwarded),
                    "inflight": self.inflight, "max_inflight": self.max_inflight,
                    "mode_changes": self.mode_changes}


STATE = State()
LOG = None
UPSTREAM = None
STOP = threading.Event()


def log(msg):
    if LOG is not None:
        with STATE.lock:
            LOG.write("%.3f %s\n" % (time.time(), msg))
            LOG.flush()


def recv_request(conn):
    """Read one HTTP request: (method, path, headers dict, body) or None."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > MAX_HEADER:
            return None
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    method, path = parts[0], parts[1]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length") or 0)
    if headers.get("expect", "").lower() == "100-continue" and len(rest) < length:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    while len(rest) < length:
        chunk = conn.recv(min(65536, length - len(rest)))
        if not chunk:
            return None
        rest += chunk
    return method, path, headers, rest[:length]


def forward(method, path, headers, body):
    """Send the request to the provider: (status, reason, content type, body)."""
    up = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
    try:
        fwd = {k: v for k, v in headers.items()
               if k not in ("host", "connection", "expect", "content-length",
                            "transfer-encoding", "keep-alive")}
        up.request(method, path, body=body if method != "GET" else None, headers=fwd)
        r = up.getresponse()
        data = r.read()
        with STATE.lock:
            STATE.forwarded[path] = STATE.forwarded.get(path, 0) + 1
        return r.status, r.reason, r.getheader("Content-Type", "application/json"), data
    finally:
        up.close()


def send_response(conn, status, reason, ctype, body, cut=None):
    """An HTTP/1.1 answer with Connection: close; cut sends only that many bytes of body."""
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (status, reason, ctype, len(body))).encode()
    conn.sendall(head)
    data = body if cut is None else body[:cut]
    view = memoryview(data)
    for i in range(0, len(view), 65536):
        conn.sendall(view[i:i + 65536])


def hang(conn):
    """Never answer: wait until the client gives up (or the proxy stops)."""
    conn.settimeout(None)
    while not STOP.is_set():
        r, _, _ = select.select([conn], [], [], 0.5)
        if r:
            try:
                if not conn.recv(65536):
                    return
            except OSError:
                return


def rpc_id(body):
    try:
        return json.loads(body).get("id")
    except Exception:
        return None


def handle(conn, addr):
    """Serve one connection: one request, answered (or not) as the mode says."""
    with STATE.lock:
        STATE.inflight += 1
        STATE.max_inflight = max(STATE.max_inflight, STATE.inflight)
    try:
        conn.settimeout(30)
        req = recv_request(conn)
        if req is None:
            return
        method, path, headers, body = req
        with STATE.lock:
            mode, only, ms, size = STATE.mode, STATE.only, STATE.ms, STATE.size
            if only is not None and FILTERS.get(only, only) not in path:
                mode = "pass"
            if mode == "refuse":        # accepted just before the switch
                mode = "pass"
            key = "%s %s" % (mode, path)
            STATE.counts[key] = STATE.counts.get(key, 0) + 1
        log("%s %s %s (%d bytes)" % (mode, method, path, len(body)))
        if mode == "pass":
            send_response(conn, *forward(method, path, headers, body))
        elif mode == "delay":
            time.sleep(ms / 1000.0)
            send_response(conn, *forward(method, path, headers, body))
        elif mode == "hang":
            hang(conn)
        elif mode == "http500":
            send_response(conn, 500, "Internal Server Error", "text/plain",
                          b"Internal Server Error (fault proxy)\n")
        elif mode == "http503":
            send_response(conn, 503, "Service Unavailable", "text/plain",
                          b"Service Unavailable (fault proxy)\n")
        elif mode == "nonjson":
            send_response(conn, 200, "OK", "text/html",
                          b"<html><body>502 Bad Gateway: not JSON at all</body></html>\n")
        elif mode == "truncated":
            status, reason, ctype, data = forward(method, path, headers, body)
            send_response(conn, status, reason, ctype, data, cut=len(data) // 2)
        elif mode == "huge":
            pad = size - 64 if size > 64 else 0
            data = ('{"jsonrpc": "2.0", "id": %s, "result": {"x": "' % json.dumps(rpc_id(body))).encode()
            data += b"y" * pad + b'"}}'
            send_response(conn, 200, "OK", "application/json", data)
        elif mode == "rpcerror":
            data = json.dumps({"jsonrpc": "2.0", "id": rpc_id(body), "error": {
                "code": 200, "message": "Odoo Server Error",
                "data": {"name": "odoo.addons.fault_proxy.UnheardOfError",
                         "message": "an error of a kind no client knows (fault proxy)",
                         "arguments": ["fault proxy"]}}}).encode()
            send_response(conn, 200, "OK", "application/json", data)
        elif mode == "commit_then_drop":
            forward(method, path, headers, body)
        elif mode == "commit_then_hang":
            forward(method, path, headers, body)
            hang(conn)
    except (OSError, http.client.HTTPException) as e:
        log("connection error: %r" % (e,))
    finally:
        with STATE.lock:
            STATE.inflight -= 1
        try:
            conn.close()
        except OSError:
            pass


def open_listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def listener(port):
    """Accept connections while the mode is not refuse; close the socket while it is."""
    sock = None
    while not STOP.is_set():
        with STATE.lock:
            want = STATE.mode != "refuse"
            gen = STATE.generation
        if want and sock is None:
            for _ in range(50):
                try:
                    sock = open_listener(port)
                    break
                except OSError:
                    time.sleep(0.1)
            if sock is None:
                print("fault_proxy: cannot listen on port %d" % port, file=sys.stderr)
                os._exit(1)
        elif not want and sock is not None:
            sock.close()
            sock = None
        with STATE.lock:
            STATE.listening = sock is not None
            STATE.applied = gen
            STATE.lock.notify_all()
        if sock is None:
            with STATE.lock:
                STATE.lock.wait_for(lambda: STATE.generation != gen or STOP.is_set(), 0.2)
            continue
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            try:
                conn, addr = sock.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


def control_handle(conn):
    """The control port: /mode/NAME, /stats, /health."""
    try:
        conn.settimeout(10)
        req = recv_request(conn)
        if req is None:
            return
        url = urllib.parse.urlsplit(req[1])
        args = dict(urllib.parse.parse_qsl(url.query))
        status, out = 200, None
        if url.path.startswith("/mode/"):
            name = url.path[len("/mode/"):]
            if name not in MODES:
                status, out = 400, {"error": "unknown mode %r" % name, "modes": MODES}
            else:
                with STATE.lock:
                    STATE.mode = name
                    STATE.only = args.get("only") or None
                    STATE.ms = int(args.get("ms", 1000))
                    STATE.size = int(args.get("size", 12 * 1024 * 1024))
                    STATE.generation += 1
                    STATE.mode_changes += 1
                    STATE.max_inflight = STATE.inflight
                    gen = STATE.generation
                    STATE.lock.wait_for(lambda: STATE.applied >= gen, 10)
                log("mode %s only=%s ms=%s" % (name, args.get("only"), args.get("ms")))
                out = STATE.snapshot()
        elif url.path == "/stats":
            out = STATE.snapshot()
        elif url.path == "/health":
            out = {"status": "ok"}
        else:
            status, out = 404, {"error": "no such control path"}
        send_response(conn, status, "OK" if status == 200 else "Error", "application/json",
                      json.dumps(out).encode())
    except OSError:
        pass
    finally:
        conn.close()


def control(port):
    sock = open_listener(port)
    while not STOP.is_set():
        r, _, _ = select.select([sock], [], [], 0.2)
        if r:
            conn, _ = sock.accept()
            threading.Thread(target=control_handle, args=(conn,), daemon=True).start()


def main():
    global LOG, UPSTREAM
    ap = argparse.ArgumentParser(description="fault-injecting proxy in front of the provider")
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--control", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--lifetime", type=float, default=900)
    ap.add_argument("--log")
    a = ap.parse_args()
    UPSTREAM = urllib.parse.urlsplit(a.upstream)
    if UPSTREAM.hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the upstream must be on loopback")
    if a.log:
        LOG = open(a.log, "a")
    threading.Thread(target=listener, args=(a.listen,), daemon=True).start()
    threading.Thread(target=control, args=(a.control,), daemon=True).start()
    deadline = time.monotonic() + a.lifetime
    while time.monotonic() < deadline:
        time.sleep(0.5)
    STOP.set()
    log("lifetime of %.0f s reached: exiting" % a.lifetime)
    os._exit(0)


if __name__ == "__main__":
    main()
