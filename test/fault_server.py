#!/usr/bin/env python3
"""A misbehaving provider for the failure tests (loopback only).

The first path segment picks the failure; the rest is the IAP path the
extension appends to its endpoint, e.g. POST /garbage/iap/1/balance.
"""
import json
import sys
import time
from urllib.parse import unquote
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# The company Odoo's enrichment tests answer with (MockIAPEnrich in
# addons/iap/tests/common.py; values as documented in
# shared/reference/odoo-iap.md section 2.3).
SIMULATOR_COMPANY = {
    "name": "Simulator INC", "location": "Simulator Street", "city": "SimCity",
    "postal_code": "9876", "country_code": "BE", "clearbit_id": "idontknow",
    "phone_numbers": ["+3269001122", "+32456001122"],
    "twitter": "testtwitter", "facebook": "testfacebook",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(200, '{"status": "ok"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            rid = json.loads(raw).get("id")
        except Exception:
            rid = None
        kind = self.path.strip("/").split("/")[0]
        if kind == "garbage":
            self.reply(200, "<html>this is not json</html>", "text/html")
        elif kind == "http500":
            self.reply(500, "Internal Server Error", "text/plain")
        elif kind == "http503json":
            self.reply(503, json.dumps({"jsonrpc": "2.0", "id": rid, "error": {
                "code": 503, "message": "Service Unavailable",
                "data": {"name": "ServiceUnavailable", "message": "down for maintenance"}}}))
        elif kind == "slow":
            time.sleep(5)
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}))
        elif kind == "notrpc":
            self.reply(200, '{"hello": "world"}')
        elif kind == "wrongresult":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": [1, 2, 3]}))
        elif kind == "badvalue":
            params = json.loads(raw)["params"]
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid,
                                        "result": {k: 42 for k in params.get("domains", {})}}))
        elif kind == "simulator":
            # /simulator[/<URL-encoded JSON: {domain: {field: value}}>]/iap/...:
            # Odoo's mock company for every domain, with that domain's fields
            # replaced, as mockIAPEnrichGateway(email_data=...) does
            segs = self.path.strip("/").split("/")
            per_domain = json.loads(unquote(segs[1])) if len(segs) > 1 and segs[1] != "iap" else {}
            domains = json.loads(raw)["params"].get("domains", {})
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": {
                k: dict(SIMULATOR_COMPANY, **per_domain.get(d, {})) for k, d in domains.items()}}))
        elif kind == "big":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"x": "y" * 200000}}))
        elif kind == "servererror":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "error": {
                "code": 200, "message": "Odoo Server Error",
                "data": {"name": "odoo.exceptions.AccessError", "message": "Access denied"}}}))
        else:
            self.reply(404, "no such fault", "text/plain")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 57071
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
