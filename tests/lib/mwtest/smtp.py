"""SMTP clients for tests: swaks (what admins use) and smtplib.

    code, transcript = swaks("--to", "a@example.org", port=pf.port)
    send(pf.port, "a@friend.example", ["b@example.org"], raw_bytes)  # (250, "2.0.0 Ok: queued as ...")
    auth_send(pf.submission_port, "alice", "password", "alice@example.org", "x@y.example", raw_bytes)

send() raises SMTPRejected (an smtplib.SMTPResponseException: .smtp_code,
.smtp_error, and .stage) when the server refuses the message at any step.
"""
import smtplib
import subprocess


class SMTPRejected(smtplib.SMTPResponseException):
    """A 4xx/5xx reply. stage is "MAIL", "RCPT", "DATA" or "end of data";
    rcpt is the refused recipient at the RCPT stage."""

    def __init__(self, code, msg, stage, rcpt=None):
        if isinstance(msg, bytes):
            msg = msg.decode(errors="replace")
        super().__init__(code, msg)
        self.stage = stage
        self.rcpt = rcpt

    def __str__(self):
        return "%s%s: %d %s" % (self.stage, " <%s>" % self.rcpt if self.rcpt else "",
                               self.smtp_code, self.smtp_error)


def swaks(*args, server=None, port=None, input=None, timeout=60):
    """Runs swaks with args; returns (exit status, transcript text).
    server/port become --server HOST:PORT (server defaults to 127.0.0.1
    when only port is given); without either, args must name --server.
    Exit 0 means the message was accepted; 23, 24, 25 mean a refusal at
    MAIL, RCPT, DATA (swaks(1) lists them all). input is fed to stdin
    (for --data -); swaks turns its LFs into CRLF and sends its own CRLF
    before the final ".", so input without a final line break arrives
    as input + CRLF."""
    argv = ["swaks", "--hide-informational"]
    if server is not None or port is not None:
        argv += ["--server", "%s:%d" % (server or "127.0.0.1", port or 25)]
    elif not any(a in ("-s", "--server") or str(a).startswith("--server=") for a in args):
        raise ValueError("swaks: give server/port or --server (else it would look up MX records)")
    p = subprocess.run(argv + [str(a) for a in args], input=input, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def send(port, mail_from, rcpts, data, host="127.0.0.1", helo="client.example",
         source_address=None, user=None, password=None, timeout=30):
    """Sends data (bytes: headers, empty line, body) with smtplib from
    source_address (any 127.0.0.0/8 address) and returns the final reply
    as (code, text). Raises SMTPRejected on a refused MAIL, RCPT or DATA,
    smtplib.SMTPAuthenticationError on a failed AUTH. With user, AUTH
    PLAIN first (as auth_send)."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    if isinstance(data, str):
        data = data.encode()
    with smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout,
                      source_address=(source_address, 0) if source_address else None) as s:
        s.ehlo_or_helo_if_needed()
        if user is not None:
            # exactly one AUTH PLAIN: smtplib's login() would try every
            # mechanism in turn, each failure costing the server's delay
            s.user, s.password = user, password
            s.auth("PLAIN", s.auth_plain)
        code, msg = s.mail(mail_from)
        if code >= 400:
            raise SMTPRejected(code, msg, "MAIL")
        for r in rcpts:
            code, msg = s.rcpt(r)
            if code >= 400:
                raise SMTPRejected(code, msg, "RCPT", r)
        try:
            code, msg = s.data(data)  # smtplib dot-stuffs and ends lines with CRLF
        except smtplib.SMTPDataError as e:  # the DATA command itself refused
            raise SMTPRejected(e.smtp_code, e.smtp_error, "DATA") from None
        if code >= 400:
            raise SMTPRejected(code, msg, "end of data")
        return code, msg.decode(errors="replace") if isinstance(msg, bytes) else msg


def auth_send(port, user, password, mail_from, rcpts, data, **kw):
    """AUTH PLAIN as user, then send(); see send()."""
    return send(port, mail_from, rcpts, data, user=user, password=password, **kw)
