"""SMTP clients for tests: swaks (what admins use) and smtplib."""
import smtplib
import subprocess


def swaks(*args, server="127.0.0.1", port=25, input=None, timeout=60):
    """Runs swaks; returns (exit status, transcript). Exit 0 means the
    message was accepted; 23-25 mean a 4xx/5xx at some step (swaks(1))."""
    argv = ["swaks", "--server", "%s:%d" % (server, port), "--hide-informational"] + list(args)
    p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def send(port, mail_from, rcpts, data, host="127.0.0.1", helo="client.example",
         source_address=None, user=None, password=None):
    """Sends with smtplib; returns (code, text) of the final reply. A refusal
    raises smtplib.SMTPResponseException (or SMTPRecipientsRefused) with the
    code and text."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with smtplib.SMTP(host, port, local_hostname=helo, timeout=30,
                      source_address=(source_address, 0) if source_address else None) as s:
        s.ehlo(helo)
        if user is not None:
            s.login(user, password)
        s.mail(mail_from)
        for r in rcpts:
            code, text = s.rcpt(r)
            if code >= 400:
                raise smtplib.SMTPRecipientsRefused({r: (code, text)})
        code, text = s.data(data)
        if code >= 400:
            raise smtplib.SMTPDataError(code, text)
        return code, text.decode(errors="replace") if isinstance(text, bytes) else text


def auth_send(port, user, password, mail_from, rcpts, data, **kw):
    return send(port, mail_from, rcpts, data, user=user, password=password, **kw)
