/*
 * notify: systemd's readiness protocol (sd_notify(3)) for Type=notify units,
 * without linking libsystemd: one datagram to the unix socket named in
 * $NOTIFY_SOCKET ("@name": an abstract socket). Without $NOTIFY_SOCKET (not
 * under systemd, or Type=simple) it does nothing.
 *
 *   mw_notify("READY=1")      socket bound, privileges dropped, serving
 *   mw_notify("RELOADING=1")  a SIGHUP reload begins; READY=1 when done
 *   mw_notify("STOPPING=1")   shutting down
 *
 * No allocation, no locks: callable from any thread. Nothing to free.
 */
#ifndef MW_NOTIFY_H
#define MW_NOTIFY_H

/* Sends state (e.g. "READY=1"); 0, or -1 when there is no socket or the
   send failed (systemd only learns less: callers ignore it). */
int mw_notify(const char *state);

#endif
