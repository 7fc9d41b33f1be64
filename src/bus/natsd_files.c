/* What the embedded bus server (natsd.c) keeps on disk, and the stale
 * server a crashed run may have left on it.
 *
 * Files under <data_dir>/nats/ (the directory is 0700):
 *   nats.conf          rewritten at every (re)start, 0600: it holds the password
 *   credentials        "user=dagi\npassword=<43 chars base64url>\n", 0600, made once
 *   port               the client port of the last ready server
 *   nats.pid           written by the server itself (pid_file)
 *   ports/             the server's ports_file_dir (<binary>_<pid>.ports)
 *   jetstream/         the JetStream store
 *   nats-server.log    the child's stdout and stderr, rotated to .1 over 10 MB
 *                      (natsd.c)
 *   lock               flock'ed while a natsd runs on the dir: a second node on
 *                      the same data dir fails instead of taking the store,
 *                      and a server found without a lock holder is stale */
#include "bus/natsd_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"

/* --- small file helpers --- */

/* `tighten`: also chmod an existing directory to 0700 (ours, not the node's). */
int natsd_make_private_dir(const char *path, bool tighten, struct dagi_error *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return dagi_error_set(err, DAGI_EIO, "natsd: mkdir %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return dagi_error_set(err, DAGI_EIO, "natsd: %s is not a directory", path);
    if (tighten && (st.st_mode & 0777) != 0700 && chmod(path, 0700) < 0)
        return dagi_error_set(err, DAGI_EIO, "natsd: chmod %s: %s", path, strerror(errno));
    return DAGI_OK;
}

/* Writes through a temp file and rename(), so a crash never leaves half a
 * config or half a credentials file behind. */
int natsd_write_file(const char *path, const char *text, struct dagi_error *err)
{
    int rc = DAGI_OK;
    char *tmp = dagi_xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "natsd: open %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = dagi_error_set(err, DAGI_EIO, "natsd: write %s: %s", tmp, strerror(errno));
            goto out;
        }
        done += (size_t)n;
    }
    /* O_CREAT's mode does not apply to an existing file. */
    if (fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "natsd: sync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) < 0)
        rc = dagi_error_set(err, DAGI_EIO, "natsd: rename %s: %s", tmp, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Reads up to cap-1 bytes, NUL-terminated; returns the length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* --- the lock --- */

/* Takes <dir>/lock for as long as d lives (natsd_free closes lock_fd). */
int natsd_lock_dir(struct dagi_natsd *d, struct dagi_error *err)
{
    int rc = DAGI_OK;
    char *lock_path = dagi_xasprintf("%s/lock", d->dir);
    d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        bool busy = d->lock_fd >= 0 && errno == EWOULDBLOCK;
        rc = dagi_error_set(err, busy ? DAGI_EEXIST : DAGI_EIO, "natsd: %s: %s", lock_path,
                            busy ? "another dagi node runs on this data dir" : strerror(errno));
    }
    free(lock_path);
    return rc;
}

/* --- credentials --- */

static void base64url(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *out++ = abc[(acc << (6 - bits)) & 63];
    *out = '\0';
}

/* The password is made once and kept: a restarted node (and anything that
 * stored the credentials) must keep working with the same store. */
int natsd_load_credentials(struct dagi_natsd *d, struct dagi_error *err)
{
    char text[512];
    ssize_t n = read_file(d->cred_path, text, sizeof(text));
    if (n == -ENOENT) {
        unsigned char raw[32];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
            return dagi_error_set(err, DAGI_EIO, "natsd: getrandom: %s", strerror(errno));
        base64url(raw, sizeof(raw), d->password);
        char *body = dagi_xasprintf("user=%s\npassword=%s\n", NATSD_USER, d->password);
        int rc = natsd_write_file(d->cred_path, body, err);
        free(body);
        return rc;
    }
    if (n < 0)
        return dagi_error_set(err, DAGI_EIO, "natsd: read %s: %s", d->cred_path, strerror((int)-n));
    if (chmod(d->cred_path, 0600) < 0)
        return dagi_error_set(err, DAGI_EIO, "natsd: chmod %s: %s", d->cred_path, strerror(errno));
    const char *p = strstr(text, "password=");
    if (!p)
        goto bad;
    p += strlen("password=");
    size_t len = strcspn(p, "\r\n");
    if (len < 16 || len >= sizeof(d->password))
        goto bad;
    /* base64url only: the value goes into nats.conf between double quotes. */
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            goto bad;
    }
    memcpy(d->password, p, len);
    d->password[len] = '\0';
    return DAGI_OK;
bad:
    return dagi_error_set(err, DAGI_EPARSE,
                          "natsd: %s is malformed (want user=dagi and a base64url password=)",
                          d->cred_path);
}

/* --- nats.conf --- */

int natsd_write_conf(struct dagi_natsd *d, int port, struct dagi_error *err)
{
    struct dagi_buf b;
    dagi_buf_init(&b, 16 * 1024);
    /* Paths were checked for quotes and backslashes; the password is base64url.
     * store_dir is our dir: the server keeps its store in <store_dir>/jetstream. */
    dagi_buf_appendf(&b,
                     "# Written by dagi at every start of the embedded bus: edits are lost.\n"
                     "server_name: \"%s\"\n"
                     "host: \"127.0.0.1\"\n"
                     "port: %d\n"
                     "max_payload: %zu\n"
                     "pid_file: \"%s\"\n"
                     "ports_file_dir: \"%s\"\n"
                     "jetstream {\n"
                     "  store_dir: \"%s\"\n"
                     "  max_memory_store: 256MB\n"
                     "  max_file_store: 10GB\n"
                     "}\n"
                     "authorization {\n"
                     "  users = [ { user: \"%s\", password: \"%s\" } ]\n"
                     "}\n",
                     d->server_name, port > 0 ? port : -1, d->max_payload, d->pid_path,
                     d->ports_dir, d->dir, NATSD_USER, d->password);
    int rc = natsd_write_file(d->conf_path, dagi_buf_str(&b), err);
    dagi_buf_release(&b);
    return rc;
}

/* --- ports --- */

static int read_recorded_port(const struct dagi_natsd *d)
{
    char text[32];
    if (read_file(d->port_path, text, sizeof(text)) <= 0)
        return 0;
    char *end;
    long port = strtol(text, &end, 10);
    return (end != text && port > 0 && port < 65536) ? (int)port : 0;
}

/* Free for nats-server: SO_REUSEADDR like Go's listener, so connections in
 * TIME_WAIT from the previous server do not count, only a live listener. */
static bool port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* The port of the previous run if it is still free, so that clients
 * reconnect to the URL they know; else the server picks one. */
int natsd_choose_port(struct dagi_natsd *d)
{
    int port = d->port ? d->port : read_recorded_port(d);
    if (port && !port_is_free(port)) {
        char text[16];
        snprintf(text, sizeof(text), "%d", port);
        dagi_log_warn(NULL, "nats-server port taken, picking a new one", "port", text);
        port = 0;
    }
    return port;
}

/* Calls fn on every ports file of `pid` (all of them when pid is 0).  The
 * server names it <basename of argv[0]>_<pid>.ports; matching on the pid
 * alone keeps us independent of how the binary was named. */
static void each_ports_file(const struct dagi_natsd *d, pid_t pid,
                            bool (*fn)(const char *path, void *ud), void *ud)
{
    DIR *dir = opendir(d->ports_dir);
    if (!dir)
        return;
    char want[32];
    if (pid)
        snprintf(want, sizeof(want), "_%ld.ports", (long)pid);
    else
        snprintf(want, sizeof(want), ".ports");
    size_t wn = strlen(want);
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n <= wn || strcmp(e->d_name + n - wn, want) != 0)
            continue;
        char *path = dagi_xasprintf("%s/%s", d->ports_dir, e->d_name);
        bool more = fn(path, ud);
        free(path);
        if (!more)
            break;
    }
    closedir(dir);
}

static bool on_ports_file_remove(const char *path, void *ud)
{
    (void)ud;
    unlink(path);
    return true;
}

void natsd_remove_ports_files(const struct dagi_natsd *d, pid_t pid)
{
    each_ports_file(d, pid, on_ports_file_remove, NULL);
}

/* {"nats":["nats://127.0.0.1:PORT"],...}: *ud = PORT, or 0 while the file
 * is still being written (the server does not write it atomically). */
static bool on_ports_file_read(const char *path, void *ud)
{
    int *port = ud;
    char text[4096];
    ssize_t n = read_file(path, text, sizeof(text));
    if (n <= 0)
        return false;
    json_t *root = json_loadb(text, (size_t)n, 0, NULL);
    const char *url = json_string_value(json_array_get(json_object_get(root, "nats"), 0));
    const char *colon = url ? strrchr(url, ':') : NULL;
    if (colon) {
        long p = strtol(colon + 1, NULL, 10);
        *port = (p > 0 && p < 65536) ? (int)p : 0;
    }
    json_decref(root);
    return false;
}

int natsd_read_ports_file(const struct dagi_natsd *d)
{
    int port = 0;
    each_ports_file(d, d->pid, on_ports_file_read, &port);
    return port;
}

/* --- stale servers --- */

enum proc_state { PROC_GONE, PROC_RUNNING, PROC_EXITING };

/* A zombie whose thread-group leader is reported 'Z' may still have other
 * threads exiting that hold its sockets (nats-server is a Go program: many
 * threads), so it is gone only once /proc/<pid>/task lists the leader
 * alone.  An unreaped zombie (its parent, perhaps a reaper that never
 * reaps, has not collected it) is gone for our purposes. */
static enum proc_state process_state(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno != EPERM)
        return PROC_GONE;
    char path[64], stat_text[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (read_file(path, stat_text, sizeof(stat_text)) <= 0)
        return PROC_GONE;
    const char *p = strrchr(stat_text, ')'); /* comm may hold spaces and parens */
    if (!(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')))
        return PROC_RUNNING;
    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    DIR *dir = opendir(path);
    int tasks = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        tasks += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    return tasks > 1 ? PROC_EXITING : PROC_GONE;
}

/* A process is a stale server of ours if it is nats-server run with our
 * conf: a pid file alone could name a recycled pid of anything. */
static bool is_our_server(const struct dagi_natsd *d, pid_t pid)
{
    char path[64], cmd[4096];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    ssize_t n = read_file(path, cmd, sizeof(cmd));
    if (n <= 0 || !strstr(cmd, "nats-server")) /* argv[0] comes first */
        return false;
    for (const char *arg = cmd; arg < cmd + n; arg += strlen(arg) + 1)
        if (strcmp(arg, d->conf_path) == 0)
            return true;
    return false;
}

static bool wait_gone(pid_t pid, bool reap, int ms)
{
    for (int waited = 0;; waited += NATSD_POLL_MS) {
        int status;
        if (reap ? waitpid(pid, &status, WNOHANG) != 0 : process_state(pid) == PROC_GONE)
            return true;
        if (waited >= ms)
            return false;
        natsd_sleep_ms(NATSD_POLL_MS);
    }
}

/* SIGTERM, a grace period, SIGKILL.  `reap`: pid is our child. */
void natsd_terminate(pid_t pid, bool reap, int grace_ms)
{
    kill(pid, SIGTERM);
    kill(pid, SIGCONT); /* a stopped process would not act on SIGTERM */
    if (wait_gone(pid, reap, grace_ms))
        return;
    kill(pid, SIGKILL);
    if (reap) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    } else {
        wait_gone(pid, false, 2000);
    }
}

/* A server left running by a run that died without PDEATHSIG taking it (an
 * older dagi, or one started by hand) would hold the store and the port.
 * We hold the dir's lock, so no live natsd owns it. */
void natsd_stop_stale_server(struct dagi_natsd *d)
{
    char text[32];
    if (read_file(d->pid_path, text, sizeof(text)) > 0) {
        long pid = strtol(text, NULL, 10);
        enum proc_state state = pid > 1 && pid != getpid() ? process_state((pid_t)pid) : PROC_GONE;
        if (state == PROC_RUNNING && is_our_server(d, (pid_t)pid)) {
            char pid_text[24];
            snprintf(pid_text, sizeof(pid_text), "%ld", pid);
            dagi_log_warn(NULL, "stopping a stale nats-server", "pid", pid_text, "dir", d->dir);
            natsd_terminate((pid_t)pid, false, NATSD_STOP_GRACE_MS);
        } else if (state == PROC_EXITING) {
            /* Dying already (our previous parent was just killed, say): its
             * cmdline is gone, but it still holds the port for a moment. */
            wait_gone((pid_t)pid, false, 2000);
        }
    }
    unlink(d->pid_path);
    natsd_remove_ports_files(d, 0);
}
