"""milter-auth in the demo: SPF, DKIM and DMARC on the mail that arrives."""
import base64
import email
import os
import pwd
import subprocess

NAME = "milter-auth"
BINARY = "milter-auth/milter-auth"


def missing(demo):
    if demo.binary(BINARY) is None:
        return "not built (configured with --disable-milter-auth?)"


def _key(demo):
    """An RSA key for friend.example's DKIM signatures."""
    priv = os.path.join(demo.dir, "friend-dkim.pem")
    if not os.path.exists(priv):
        subprocess.run(["openssl", "genrsa", "-out", priv, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", priv, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return open(priv, "rb").read(), base64.b64encode(der).decode()


def zone(demo):
    demo.milter_auth_key, pub = _key(demo)
    return """
friend.example                  TXT "v=spf1 ip4:127.0.0.2 -all"
_dmarc.friend.example           TXT "v=DMARC1; p=reject; rua=mailto:dmarc@friend.example"
demo._domainkey.friend.example  TXT "v=DKIM1; k=rsa; p=%s"
bank.example                    TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc.bank.example             TXT "v=DMARC1; p=reject"
shop.example                    TXT "v=spf1 ip4:192.0.2.20 -all"
_dmarc.shop.example             TXT "v=DMARC1; p=quarantine"
""" % pub


def attach(demo):
    sockdir = os.path.join(demo.postfix.queue_dir, "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(sockdir, 0o750)
    conf = os.path.join(demo.dir, "milter-auth.conf")
    with open(conf, "w") as f:
        f.write("socket = unix:%s/milter-auth.sock\nsocket_group = postfix\nuser = nobody\n"
                "authserv_id = mx.example.org\ntrusted_networks = 127.0.0.1/32\n"
                "dns_resolver = %s\n" % (sockdir, demo.dns.spec))
    demo.milter_auth_log = os.path.join(demo.dir, "milter-auth.log")
    from mwtest import sandbox
    proc = sandbox.spawn([demo.binary(BINARY), "-f", "-c", conf], log=demo.milter_auth_log)
    sandbox.wait_for(lambda: "listening on" in _log(demo) or proc.poll() is not None, 15,
                     what="milter-auth")
    # The snippet an admin pastes, unchanged.
    demo.postfix.apply_snippet("contrib/postfix/milter-auth.cf")


def _log(demo):
    from mwtest import sandbox
    return sandbox.read_text(demo.milter_auth_log)


def _signed(demo, msg):
    import dkim
    return dkim.sign(msg, b"demo", b"friend.example", demo.milter_auth_key,
                     include_headers=[b"from", b"to", b"subject"]) + msg


def messages(demo):
    m = __import__("__main__").Message  # the demo's own class
    letter = (b"From: Friend <friend@friend.example>\r\nTo: alice@example.org\r\n"
              b"Subject: a signed letter\r\n\r\nHi Alice, this one is DKIM-signed.\r\n")
    forged_ar = (b"Authentication-Results: mx.example.org; dmarc=pass header.from=bank.example\r\n"
                 b"From: Friend <friend@friend.example>\r\nTo: alice@example.org\r\n"
                 b"Subject: I vouch for myself\r\n\r\nTrust me.\r\n")
    return [
        m("a signed letter from a friend", "friend.example signs with DKIM and sends from its own "
          "server: SPF, DKIM and DMARC all pass.", data=_signed(demo, letter), plugin=NAME),
        m("a forged bank notice", "Someone on another server (127.0.0.3) sends as security@bank.example, "
          "whose DMARC policy is p=reject.", mail_from="security@bank.example", client_ip="127.0.0.3",
          helo="bank-security.example", headers={"From": "Bank Security <security@bank.example>"},
          body="Your account is locked. Click here.\n", plugin=NAME),
        m("a shop newsletter from the wrong server", "shop.example says p=quarantine; this copy "
          "comes from a server it does not list.", mail_from="news@shop.example", client_ip="127.0.0.3",
          helo="mailer.example", headers={"From": "Shop <news@shop.example>"}, plugin=NAME),
        m("a message that vouches for itself", "It carries an Authentication-Results header "
          "claiming our own authserv-id: a forgery.", data=forged_ar, plugin=NAME),
    ]


def describe(demo, msg):
    out = []
    if msg.delivered is not None:
        for ar in msg.delivered.get_all("Authentication-Results") or []:
            text = " ".join(ar.split())
            if text.startswith("mx.example.org;"):
                parts = [p.strip() for p in text.split(";")[1:]]
                out.append("milter-auth: " + "; ".join(
                    p.split(" (")[0] + (" " + " ".join(w for w in p.split() if w.startswith(("header.", "smtp.")))
                                        if "(" in p else "") for p in parts))
        if msg.name == "a message that vouches for itself" and "removed=1" in _log(demo):
            out.append("milter-auth: removed the forged Authentication-Results header")
    elif msg.exit_code == 0:
        held = [q for q in demo.postfix.queue() if q.get("queue_name") == "hold"]
        if held:
            out.append("milter-auth: DMARC p=quarantine, put in Postfix's hold queue "
                       "(postsuper -H releases it)")
    elif msg.smtp_reply and msg.plugin in (None, NAME) and (
            msg.kind == "inbound" and "5.7.1" in msg.smtp_reply or "DMARC" in msg.smtp_reply):
        out.append("milter-auth: refused at SMTP: " + msg.smtp_reply)
    return out


def finish(demo, messages):
    lines = [line for line in _log(demo).splitlines() if ": client=" in line]
    demo.notes.append("milter-auth logged %d messages, one line each, e.g.:" % len(lines))
    if lines:
        demo.notes.append("  " + lines[-1].split("]: ", 1)[-1])
