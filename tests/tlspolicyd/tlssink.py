#!/usr/bin/python3
"""A minimal SMTP next hop for tests: accepts every message and keeps it
in DIR as one file, with a first line saying whether it came over TLS.

    tlssink.py --port N --dir DIR [--cert FILE --key FILE] [--addr 127.0.0.1]

With --cert it offers STARTTLS; without, it offers none (a server that
cannot do TLS). smtp-sink (Postfix) has no STARTTLS, hence this."""
import argparse
import os
import socketserver
import ssl
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--addr", default="127.0.0.1")
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, text):
            self.wfile.write(text.encode() + b"\r\n")
            self.wfile.flush()

        def handle(self):
            tls = None
            self.reply("220 sink ESMTP")
            while True:
                line = self.rfile.readline(4096)
                if not line:
                    return
                cmd = line.decode("latin-1").strip()
                verb = cmd.split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    lines = ["sink", "8BITMIME"] + (["STARTTLS"] if ctx and not tls else [])
                    for ln in lines[:-1]:
                        self.reply("250-" + ln)
                    self.reply("250 " + lines[-1])
                elif verb == "STARTTLS" and ctx and not tls:
                    self.reply("220 go ahead")
                    conn = ctx.wrap_socket(self.connection, server_side=True)
                    tls = conn.version()
                    self.connection = conn
                    self.rfile = conn.makefile("rb")
                    self.wfile = conn.makefile("wb")
                elif verb == "DATA":
                    self.reply("354 go ahead")
                    body = []
                    while True:
                        ln = self.rfile.readline(65536)
                        if not ln or ln in (b".\r\n", b".\n"):
                            break
                        body.append(ln)
                    name = os.path.join(args.dir, "%d.%d" % (time.time_ns(), os.getpid()))
                    with open(name + ".tmp", "wb") as f:
                        f.write(b"X-Sink-TLS: %s\r\n" % (tls or "none").encode())
                        f.writelines(body)
                    os.rename(name + ".tmp", name)
                    self.reply("250 2.0.0 kept")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    self.reply("250 ok")
                else:
                    self.reply("502 5.5.2 not here")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    srv = socketserver.ThreadingTCPServer((args.addr, args.port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
