#!/usr/bin/python3
"""A local HTTPS server for MTA-STS policies (tests only).

    stsserver.py --port N --cert FILE --key FILE --dir DIR --ready-file F

GET /.well-known/mta-sts.txt answers DIR/HOST (HOST from the Host header)
as text/plain, or 404. DIR/HOST.delay holds seconds to wait before
answering (a slow server); DIR/HOST.type a Content-Type to send instead.
Every request is appended to DIR/requests.log as "HOST PATH".

--static ROOT (milter-pgp's WKD tests): GET /P?Q answers the file ROOT/HOST/P
(any path, the query ignored) as application/octet-stream, or 404;
ROOT/HOST.delay holds seconds to wait first."""
import argparse
import http.server
import os
import ssl
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--static")
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def do_GET(self):
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            with open(os.path.join(args.dir, "requests.log"), "a") as f:
                f.write("%s %s\n" % (host, self.path))
            base = os.path.join(args.dir, os.path.basename(host))
            if args.static:
                base = os.path.join(args.static, os.path.basename(host))
                path = self.path.split("?", 1)[0]
                target = os.path.realpath(os.path.join(base, path.lstrip("/")))
                if os.path.exists(base + ".delay"):
                    with open(base + ".delay") as f:
                        time.sleep(float(f.read()))
                if ".." in path.split("/") or not os.path.isfile(target):
                    self.send_response(404)
                    body = b"not found\n"
                else:
                    self.send_response(200)
                    with open(target, "rb") as f:
                        body = f.read()
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if os.path.exists(base + ".delay"):
                with open(base + ".delay") as f:
                    time.sleep(float(f.read()))
            if self.path != "/.well-known/mta-sts.txt" or not os.path.exists(base):
                body = b"not found\n"
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
            else:
                with open(base, "rb") as f:
                    body = f.read()
                ctype = "text/plain"
                if os.path.exists(base + ".type"):
                    with open(base + ".type") as f:
                        ctype = f.read().strip()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    with open(args.ready_file + ".tmp", "w") as f:
        f.write(str(args.port))
    os.rename(args.ready_file + ".tmp", args.ready_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
