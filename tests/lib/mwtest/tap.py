"""A tiny TAP producer, so automake's tap-driver.sh counts python tests.

    t = Tap()
    t.ok(x == 1, "x is one")
    t.eq(got, want, "the header")
    t.done()          # prints the plan, exits 1 if anything failed
"""
import sys
import traceback


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        name = name.replace("#", "\\#")
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag:
                self.diag(diag)
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def contains(self, haystack, needle, name):
        return self.ok(needle in haystack, name,
                       "%r not found in:\n%s" % (needle, haystack if isinstance(haystack, str) else repr(haystack)))

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def run(self, func, *args):
        """Runs func(self, *args); an exception is one failed test, not a crash."""
        try:
            func(self, *args)
        except Exception:
            self.ok(False, "%s raised" % func.__name__, traceback.format_exc())

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)
