/* Private to natsd.c (the child and its supervision) and natsd_files.c
 * (what the server keeps on disk, and stale servers): the natsd object and
 * the functions one calls in the other.  Everything here runs on the loop
 * thread, or before the loop runs (the blocking start). */
#ifndef DAGI_BUS_NATSD_INTERNAL_H
#define DAGI_BUS_NATSD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus/natsd.h"

#define NATSD_USER "dagi"
#define NATSD_STOP_GRACE_MS 5000
#define NATSD_POLL_MS 10

struct event;

enum natsd_state {
    NATSD_RUNNING,  /* child ready (or dead and not yet noticed) */
    NATSD_BACKOFF,  /* child gone; timer_ev spawns the next one */
    NATSD_STARTING, /* child spawned by a restart; timer_ev polls for readiness */
};

struct dagi_natsd {
    struct event_base *base;
    char *binary;
    char *dir; /* absolute <data_dir>/nats: stale servers are recognised by it */
    char *conf_path, *cred_path, *pid_path, *port_path, *log_path, *ports_dir, *store_dir;
    char server_name[32];
    size_t max_payload;
    unsigned start_timeout_ms;
    char password[64];
    char url[64];
    int port;  /* port of the last ready server; 0 = none yet */
    pid_t pid; /* our child; 0 while there is none */
    int lock_fd;
    off_t log_offset; /* where the current child's output starts in the log */
    enum natsd_state state;
    unsigned backoff_ms;
    int64_t ready_ns;
    int64_t deadline_ns;
    struct event *sigchld_ev, *backstop_ev, *timer_ev;
};

/* --- natsd.c --- */

void natsd_sleep_ms(int ms);

/* --- natsd_files.c --- */

/* mkdir 0700 if missing; `tighten`: also chmod an existing one to 0700. */
int natsd_make_private_dir(const char *path, bool tighten, struct dagi_error *err);
/* Writes text to path, 0600, through a temp file and rename(). */
int natsd_write_file(const char *path, const char *text, struct dagi_error *err);
/* Takes <dir>/lock (DAGI_EEXIST: another node holds it) for as long as d
 * lives: d->lock_fd, closed by natsd.c. */
int natsd_lock_dir(struct dagi_natsd *d, struct dagi_error *err);
/* Reads d->password from the credentials file, making both the first time. */
int natsd_load_credentials(struct dagi_natsd *d, struct dagi_error *err);
/* Rewrites nats.conf for a server on `port` (<= 0: the server picks one). */
int natsd_write_conf(struct dagi_natsd *d, int port, struct dagi_error *err);
/* The port to ask for: the last one if it is still free, else 0. */
int natsd_choose_port(struct dagi_natsd *d);
/* Removes the ports files of pid (of every server when pid is 0). */
void natsd_remove_ports_files(const struct dagi_natsd *d, pid_t pid);
/* The port the ports file of d->pid names, or 0 while there is none. */
int natsd_read_ports_file(const struct dagi_natsd *d);
/* SIGTERM, a grace period, SIGKILL.  `reap`: pid is our child. */
void natsd_terminate(pid_t pid, bool reap, int grace_ms);
/* Stops a server left running on our conf by a run that is gone; clears
 * the pid file and the ports files. */
void natsd_stop_stale_server(struct dagi_natsd *d);

#endif
