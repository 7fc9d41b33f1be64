/* The embedded bus: Debian's nats-server run as a supervised child of
 * `dagi node` when bus.url is "embedded" (the default).
 *
 *   - JetStream store under <data_dir>/nats/, config written there (0600);
 *   - a free loopback port chosen by the server itself (-p -1), learnt from
 *     its ports file, so there is no race for the port;
 *   - generated credentials: a random password for the user "dagi" kept in
 *     <data_dir>/nats/credentials (0600); no anonymous access;
 *   - the child dies with its parent (PR_SET_PDEATHSIG), and a stale server
 *     left by a crashed run (its pid file points at a live nats-server using
 *     our store) is stopped before a new one starts;
 *   - if the child dies it is restarted with back-off, and the connection's
 *     own reconnect logic finds it again (same port: the server is asked for
 *     the port it had).
 *
 * All of this runs on the loop thread; the child is reaped with SIGCHLD
 * handled by the loop. */
#ifndef DAGI_NATSD_H
#define DAGI_NATSD_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/err.h"

struct event_base;
struct dagi_natsd;

struct dagi_natsd_opts {
    const char *data_dir;   /* the node's data dir; the server uses <data_dir>/nats */
    const char *binary;     /* "nats-server" (looked up in PATH) */
    size_t max_payload;     /* bytes (0 = 8 MiB) */
    unsigned start_timeout_ms; /* how long to wait for the ports file (0 = 10 s) */
};

/* Starts the server and waits (blocking, before the loop runs) until it
 * accepts connections.  *out on success. */
int dagi_natsd_start(struct event_base *base, const struct dagi_natsd_opts *opts,
                     struct dagi_natsd **out, struct dagi_error *err);
/* "nats://127.0.0.1:PORT", the user and the password to connect with. */
const char *dagi_natsd_url(struct dagi_natsd *d);
const char *dagi_natsd_user(struct dagi_natsd *d);
const char *dagi_natsd_password(struct dagi_natsd *d);
pid_t dagi_natsd_pid(struct dagi_natsd *d);
/* Stops the server (SIGTERM, then SIGKILL after 5 s) and frees. */
void dagi_natsd_stop(struct dagi_natsd *d);

#endif
