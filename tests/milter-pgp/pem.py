#!/usr/bin/python3
"""milter-pgp-pem and message.asc: the OpenPGP password-encrypted message
made through GPGME decrypts with gpg --batch --passphrase and with Sequoia
sq decrypt (through a pty: sq 0.27 reads passwords from a terminal only),
byte-identical to the input MIME, and not with a wrong password; the
command's open/seal/generate: right and wrong passwords (nothing written),
password from a file, from standard input and from the terminal (pty);
no private GnuPG home is left behind; the password is in no file of the
run and in no output of the commands."""
import os
import pty
import random
import select
import subprocess
import termios
import time

from mwtest import sandbox
from mwtest.tap import Tap

TOOL = os.path.join(sandbox.top_builddir(), "milter-pgp", "milter-pgp-pem")
PW = "Zoë's pässwörd 4 the tëst"


def run(argv, pw=None, **kw):
    return subprocess.run(argv, input=None if pw is None else (pw + "\n").encode(), capture_output=True,
                          timeout=120, **kw)


def echo_on(fd):
    """Whether the pty (read through its master) still echoes input."""
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        return False


def with_tty(argv, answer, prompt=b"assword", timeout=60):
    """Runs argv on a new pty, answers the first prompt; (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    answered = False
    # A program prints its prompt, then turns echo off: answering in between
    # (a loaded machine) would echo the password back. Wait for echo off.
    prompt_seen = float("inf")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not answered and prompt in out and (not echo_on(fd) or time.monotonic() > prompt_seen + 10):
            os.write(fd, answer.encode() + b"\n")
            answered = True
        elif not answered and prompt in out and prompt_seen == float("inf"):
            prompt_seen = time.monotonic()
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def main(t):
    d = sandbox.mkdir("pem")
    rnd = random.Random(5)
    mime = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: asc\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            + rnd.randbytes(200000) + b"\r\n")
    msg = os.path.join(d, "m.eml")
    with open(msg, "wb") as f:
        f.write(mime)
    outputs = []

    # message.asc, decrypted by gpg and by sq.
    asc = os.path.join(d, "message.asc")
    tmp = sandbox.mkdir("pem", "tmp", mode=0o700)
    p = run([TOOL, "seal", "--asc", "--password-stdin", "-o", asc, msg], PW, env=dict(os.environ, TMPDIR=tmp))
    outputs.append(p.stdout + p.stderr)
    t.ok(p.returncode == 0, "seal --asc", p.stderr)
    t.ok(open(asc, "rb").read().startswith(b"-----BEGIN PGP MESSAGE-----"), "message.asc is armored")
    t.eq(os.listdir(tmp), [], "its private GnuPG home is gone afterwards")
    gh = sandbox.mkdir("pem", "gnupg", mode=0o700)
    g = run(["gpg", "--homedir", gh, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
             "--decrypt", asc], PW)
    t.ok(g.returncode == 0 and g.stdout == mime, "gpg --batch --passphrase decrypts it byte for byte",
         g.stderr.decode(errors="replace")[-800:])
    t.contains(g.stderr.decode(errors="replace"), "AES256", "AES-256 (as gpg reports it)")
    g = run(["gpg", "--homedir", gh, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
             "--decrypt", asc], "not " + PW)
    t.ok(g.returncode != 0 and mime not in g.stdout, "gpg: a wrong password decrypts nothing")
    out_sq = os.path.join(d, "sq.out")
    env_home = dict(os.environ, HOME=d)
    status, text = with_tty(["env", "HOME=" + d, "sq", "decrypt", "-o", out_sq, asc], PW)
    outputs.append(text)
    t.ok(status == 0 and open(out_sq, "rb").read() == mime, "sq decrypt (password on a pty) byte for byte",
         text.decode(errors="replace")[-500:])
    os.unlink(out_sq)
    del env_home

    # The page format through the command.
    html = os.path.join(d, "message.html")
    pwfile = os.path.join(d, "pwfile")
    with open(pwfile, "w") as f:
        f.write(PW + "\n")
    p = run([TOOL, "seal", "--html", "--password-file", pwfile, "--iterations", "2000", "-o", html, msg])
    t.ok(p.returncode == 0, "seal --html --password-file", p.stderr)
    os.unlink(pwfile)  # the password must be in no file left behind
    p = run([TOOL, "open", "--password-stdin", html], PW)
    outputs.append(p.stderr)
    t.ok(p.returncode == 0 and p.stdout == mime, "open --password-stdin: the MIME message byte for byte")
    dec = os.path.join(d, "decrypted.eml")
    p = run([TOOL, "open", "--password-stdin", "-o", dec, html], "wrong")
    t.ok(p.returncode == 1 and not os.path.exists(dec), "a wrong password: exit 1, no output file")
    t.eq(p.stderr.decode(), "milter-pgp-pem: %s: wrong password, or the file was changed\n" % html,
         "a wrong password: the reason")
    status, text = with_tty([TOOL, "open", "-o", dec, html], PW)
    outputs.append(text)
    t.ok(status == 0 and open(dec, "rb").read() == mime, "open, password from the terminal (no echo)")
    t.ok(PW.encode() not in text, "the terminal did not echo the password")
    t.eq(os.stat(dec).st_mode & 0o777, 0o600, "-o OUT is created mode 0600")
    os.unlink(dec)
    p = run([TOOL, "open", "--password-stdin", asc], PW)
    t.ok(p.returncode == 1 and b"no encrypted envelope" in p.stderr, "open refuses a file with no envelope")
    p = run([TOOL, "open", html], start_new_session=True)  # no controlling terminal
    t.ok(p.returncode == 1 and b"no terminal" in p.stderr, "no terminal and no password option: a clear error",
         p.stderr)
    t.eq(run([TOOL, "seal", "--password-stdin", msg], PW).returncode, 2, "seal without --html/--asc: usage")
    t.eq(run([TOOL, "seal", "--html", "--iterations", "999", "--password-stdin", msg], PW).returncode, 1,
         "iterations below 1000 refused")
    gen = run([TOOL, "generate"])
    words = gen.stdout.decode().strip()
    t.ok(gen.returncode == 0 and len(words) == 35 and words.count("-") == 5, "generate: 6 groups of 5", words)
    t.ok(words != run([TOOL, "generate"]).stdout.decode().strip(), "generate: a new one each time")

    leaks = []
    for root, _, names in os.walk(d):
        for n in names:
            if PW.encode() in open(os.path.join(root, n), "rb").read():
                leaks.append(n)
    t.eq(leaks, [], "the password is in no file under the test directory")
    t.ok(all(PW.encode() not in o for o in outputs), "nor in any output or error of the commands")


t = Tap()
t.run(main)
t.done()
