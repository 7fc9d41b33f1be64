/* The embedded bus server: nats-server as a supervised child (natsd.h).
 *
 * Files under <data_dir>/nats/ (the directory is 0700):
 *   nats.conf          rewritten at every (re)start, 0600: it holds the password
 *   credentials        "user=dagi\npassword=<43 chars base64url>\n", 0600, made once
 *   port               the client port of the last ready server
 *   nats.pid           written by the server itself (pid_file)
 *   ports/             the server's ports_file_dir (<binary>_<pid>.ports)
 *   jetstream/         the JetStream store
 *   nats-server.log    the child's stdout and stderr, rotated to .1 over 10 MB
 *   lock               flock'ed while a natsd runs on the dir: a second node on
 *                      the same data dir fails instead of taking the store,
 *                      and a server found without a lock holder is stale
 *
 * Reaping: a SIGCHLD evsignal gives prompt restarts, and a one-second timer
 * runs the same check as a backstop, because the signal alone is not enough:
 * libevent lets only one event_base per process receive signals (another
 * loop adding an evsignal silently takes them), a child that dies between
 * the blocking start and evsignal_add raises no event, and if some other
 * component reaps with waitpid(-1) or ignores SIGCHLD the status is gone
 * (ECHILD), which we then also count as an exit.  Only our own pid is ever
 * passed to waitpid, so other children of the process are left alone. */
#include "bus/natsd.h"

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
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

#define NATSD_USER "dagi"
#define NATSD_DEFAULT_PAYLOAD ((size_t)8 << 20)
#define NATSD_MAX_PAYLOAD ((size_t)64 << 20) /* nats-server's hard limit (and max_pending) */
#define NATSD_DEFAULT_START_MS 10000u
#define NATSD_STOP_GRACE_MS 5000
#define NATSD_POLL_MS 10
#define NATSD_BACKOFF_MIN_MS 100u
#define NATSD_BACKOFF_MAX_MS 5000u
#define NATSD_HEALTHY_NS (10LL * 1000000000LL) /* up this long: the back-off starts over */
#define NATSD_LOG_ROTATE_BYTES (10L << 20)

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

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --- small file helpers --- */

/* `tighten`: also chmod an existing directory to 0700 (ours, not the node's). */
static int make_private_dir(const char *path, bool tighten, struct dagi_error *err)
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
static int write_file(const char *path, const char *text, struct dagi_error *err)
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
static int load_credentials(struct dagi_natsd *d, struct dagi_error *err)
{
    char text[512];
    ssize_t n = read_file(d->cred_path, text, sizeof(text));
    if (n == -ENOENT) {
        unsigned char raw[32];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
            return dagi_error_set(err, DAGI_EIO, "natsd: getrandom: %s", strerror(errno));
        base64url(raw, sizeof(raw), d->password);
        char *body = dagi_xasprintf("user=%s\npassword=%s\n", NATSD_USER, d->password);
        int rc = write_file(d->cred_path, body, err);
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

/* The ports file says the server is listening; a connect proves it accepts. */
static bool tcp_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
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

static void remove_ports_files(const struct dagi_natsd *d, pid_t pid)
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

static int read_ports_file(const struct dagi_natsd *d)
{
    int port = 0;
    each_ports_file(d, d->pid, on_ports_file_read, &port);
    return port;
}

/* --- the child --- */

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
        sleep_ms(NATSD_POLL_MS);
    }
}

/* SIGTERM, a grace period, SIGKILL.  `reap`: pid is our child. */
static void terminate(pid_t pid, bool reap, int grace_ms)
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
static void stop_stale_server(struct dagi_natsd *d)
{
    char text[32];
    if (read_file(d->pid_path, text, sizeof(text)) > 0) {
        long pid = strtol(text, NULL, 10);
        enum proc_state state = pid > 1 && pid != getpid() ? process_state((pid_t)pid) : PROC_GONE;
        if (state == PROC_RUNNING && is_our_server(d, (pid_t)pid)) {
            char pid_text[24];
            snprintf(pid_text, sizeof(pid_text), "%ld", pid);
            dagi_log_warn(NULL, "stopping a stale nats-server", "pid", pid_text, "dir", d->dir);
            terminate((pid_t)pid, false, NATSD_STOP_GRACE_MS);
        } else if (state == PROC_EXITING) {
            /* Dying already (our previous parent was just killed, say): its
             * cmdline is gone, but it still holds the port for a moment. */
            wait_gone((pid_t)pid, false, 2000);
        }
    }
    unlink(d->pid_path);
    remove_ports_files(d, 0);
}

static int write_conf(struct dagi_natsd *d, int port, struct dagi_error *err)
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
    int rc = write_file(d->conf_path, dagi_buf_str(&b), err);
    dagi_buf_release(&b);
    return rc;
}

/* The port of the previous run if it is still free, so that clients
 * reconnect to the URL they know; else the server picks one. */
static int choose_port(struct dagi_natsd *d)
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

static void rotate_log(const struct dagi_natsd *d)
{
    struct stat st;
    if (stat(d->log_path, &st) == 0 && st.st_size > NATSD_LOG_ROTATE_BYTES) {
        char *old = dagi_xasprintf("%s.1", d->log_path);
        rename(d->log_path, old);
        free(old);
    }
}

/* The last bytes the current child wrote (lines joined with '|'), for
 * error messages and the exit log line. */
static void log_tail(const struct dagi_natsd *d, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = open(d->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end - (off_t)(cap - 1);
    if (from < d->log_offset)
        from = d->log_offset;
    ssize_t n = from < end ? pread(fd, out, (size_t)(end - from), from) : 0;
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (out[i] == '\n' || out[i] == '\r')
            out[i] = '|';
}

static void exec_child(const struct dagi_natsd *d, pid_t parent, int log_fd, int null_fd)
{
    /* Only async-signal-safe calls from here on: the parent may have threads.
     * PDEATHSIG fires when the *thread* that forked exits, not the process:
     * we fork only on the loop thread (the start and the restarts), which
     * lives as long as the node. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took effect */
        _exit(127);
    /* Its own process group: a Ctrl-C at the terminal goes to the node,
     * which stops the server in order, instead of to both at once. */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    /* Copies above 2 first, so the dup2s below never meet their own fd
     * (a node started with closed stdio) and always clear FD_CLOEXEC. */
    int out = fcntl(log_fd, F_DUPFD, 3), in = fcntl(null_fd, F_DUPFD, 3);
    if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(127);
    if (close_range(3, ~0U, 0) < 0) /* ENOSYS before Linux 5.9 */
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    char *argv[] = {d->binary, (char *)"-c", d->conf_path, NULL};
    execvp(d->binary, argv);
    static const char msg[] = "dagi: cannot execute the nats-server binary ";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    ignored = write(2, d->binary, strlen(d->binary));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(127);
}

static int spawn(struct dagi_natsd *d, struct dagi_error *err)
{
    int rc = DAGI_OK;
    rotate_log(d);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log_fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null_fd < 0 || log_fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "natsd: open %s: %s", d->log_path, strerror(errno));
        goto out;
    }
    d->log_offset = lseek(log_fd, 0, SEEK_END);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "natsd: fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        exec_child(d, parent, log_fd, null_fd);
    d->pid = pid;
out:
    if (null_fd >= 0)
        close(null_fd);
    if (log_fd >= 0)
        close(log_fd);
    return rc;
}

/* Ready = the ports file names a port and the port accepts connections. */
static bool child_ready(struct dagi_natsd *d)
{
    int port = read_ports_file(d);
    if (!port || !tcp_accepts(port))
        return false;
    if (d->port && d->port != port) {
        char text[16];
        snprintf(text, sizeof(text), "%d", port);
        dagi_log_warn(NULL, "nats-server came back on another port", "port", text);
    }
    d->port = port;
    snprintf(d->url, sizeof(d->url), "nats://127.0.0.1:%d", port);
    char text[16];
    snprintf(text, sizeof(text), "%d\n", port);
    struct dagi_error ignored;
    write_file(d->port_path, text, &ignored); /* only a hint for the next start */
    d->ready_ns = dagi_clock_mono_ns();
    return true;
}

static void describe_status(int status, char *out, size_t cap)
{
    if (status < 0)
        snprintf(out, cap, "reaped elsewhere");
    else if (WIFEXITED(status))
        snprintf(out, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "status %d", status);
}

/* --- supervision on the loop --- */

static void schedule(struct dagi_natsd *d, unsigned ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    evtimer_add(d->timer_ev, &tv);
}

/* Back-off before the next spawn: 100 ms doubling to 5 s. */
static void schedule_restart(struct dagi_natsd *d)
{
    d->state = NATSD_BACKOFF;
    schedule(d, d->backoff_ms);
    d->backoff_ms =
        d->backoff_ms * 2 > NATSD_BACKOFF_MAX_MS ? NATSD_BACKOFF_MAX_MS : d->backoff_ms * 2;
}

static void on_child_exit(struct dagi_natsd *d, int status)
{
    char pid_text[24], status_text[32], tail[300], delay_text[16];
    snprintf(pid_text, sizeof(pid_text), "%ld", (long)d->pid);
    describe_status(status, status_text, sizeof(status_text));
    log_tail(d, tail, sizeof(tail));
    remove_ports_files(d, d->pid);
    d->pid = 0;
    if (d->state == NATSD_RUNNING && dagi_clock_mono_ns() - d->ready_ns >= NATSD_HEALTHY_NS)
        d->backoff_ms = NATSD_BACKOFF_MIN_MS;
    snprintf(delay_text, sizeof(delay_text), "%u", d->backoff_ms);
    dagi_log_error(NULL, "nats-server exited", "pid", pid_text, "status", status_text,
                   "restart_in_ms", delay_text, "log_tail", tail);
    schedule_restart(d);
}

static void check_child(struct dagi_natsd *d)
{
    if (d->pid <= 0)
        return;
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid)
        on_child_exit(d, status);
    else if (r < 0 && errno == ECHILD)
        on_child_exit(d, -1);
}

static void on_sigchld(evutil_socket_t sig, short what, void *ud)
{
    (void)sig;
    (void)what;
    check_child(ud);
}

static void on_backstop(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    check_child(ud);
}

static void restart(struct dagi_natsd *d)
{
    struct dagi_error err;
    int rc = write_conf(d, choose_port(d), &err);
    if (rc == DAGI_OK) {
        remove_ports_files(d, 0);
        rc = spawn(d, &err);
    }
    if (rc < 0) {
        dagi_log_error(NULL, "nats-server restart failed", "error", err.message);
        schedule_restart(d);
        return;
    }
    d->state = NATSD_STARTING;
    d->deadline_ns = dagi_clock_mono_ns() + (int64_t)d->start_timeout_ms * 1000000;
    schedule(d, NATSD_POLL_MS * 2);
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    struct dagi_natsd *d = ud;
    if (d->state == NATSD_BACKOFF) {
        restart(d);
        return;
    }
    if (d->state != NATSD_STARTING)
        return;
    check_child(d);
    if (d->state != NATSD_STARTING) /* it died; on_child_exit scheduled the next try */
        return;
    if (child_ready(d)) {
        char pid_text[24];
        snprintf(pid_text, sizeof(pid_text), "%ld", (long)d->pid);
        d->state = NATSD_RUNNING;
        dagi_log_info(NULL, "nats-server restarted", "url", d->url, "pid", pid_text);
        return;
    }
    if (dagi_clock_mono_ns() < d->deadline_ns) {
        schedule(d, NATSD_POLL_MS * 2);
        return;
    }
    dagi_log_error(NULL, "nats-server did not become ready in time, killing it");
    kill(d->pid, SIGKILL); /* prompt, so the blocking reap below is short */
    int status;
    while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
        ;
    on_child_exit(d, status);
}

/* --- the API --- */

static bool path_is_plain(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void natsd_free(struct dagi_natsd *d)
{
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    if (d->sigchld_ev)
        event_free(d->sigchld_ev);
    if (d->backstop_ev)
        event_free(d->backstop_ev);
    if (d->timer_ev)
        event_free(d->timer_ev);
    free(d->binary);
    free(d->dir);
    free(d->conf_path);
    free(d->cred_path);
    free(d->pid_path);
    free(d->port_path);
    free(d->log_path);
    free(d->ports_dir);
    free(d->store_dir);
    free(d);
}

int dagi_natsd_start(struct event_base *base, const struct dagi_natsd_opts *opts,
                     struct dagi_natsd **out, struct dagi_error *err)
{
    int rc = DAGI_OK;
    struct dagi_natsd *d = NULL;
    if (!base || !opts || !opts->data_dir || !*opts->data_dir)
        return dagi_error_set(err, DAGI_EINVAL, "natsd: a loop and a data_dir are required");
    if (opts->max_payload > NATSD_MAX_PAYLOAD)
        return dagi_error_set(err, DAGI_EINVAL, "natsd: max_payload %zu is over 64 MiB",
                              opts->max_payload);

    d = dagi_xcalloc(1, sizeof(*d));
    d->lock_fd = -1;
    d->base = base;
    d->binary = dagi_xstrdup(opts->binary && *opts->binary ? opts->binary : "nats-server");
    d->max_payload = opts->max_payload ? opts->max_payload : NATSD_DEFAULT_PAYLOAD;
    d->start_timeout_ms = opts->start_timeout_ms ? opts->start_timeout_ms : NATSD_DEFAULT_START_MS;
    d->backoff_ms = NATSD_BACKOFF_MIN_MS;

    if ((rc = make_private_dir(opts->data_dir, false, err)) < 0)
        goto out;
    char *rel = dagi_xasprintf("%s/nats", opts->data_dir);
    rc = make_private_dir(rel, true, err);
    /* Absolute, so the stale check matches whatever the working directory. */
    d->dir = rc == DAGI_OK ? realpath(rel, NULL) : NULL;
    free(rel);
    if (rc < 0)
        goto out;
    if (!d->dir || !path_is_plain(d->dir)) {
        rc = dagi_error_set(err, DAGI_EINVAL,
                            "natsd: data dir %s cannot be resolved or holds quotes, "
                            "backslashes or control characters",
                            opts->data_dir);
        goto out;
    }
    /* The lock first: with it held, a server running on our conf can only
     * be left over from a node that is gone, so stopping it is safe. */
    char *lock_path = dagi_xasprintf("%s/lock", d->dir);
    d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        bool busy = d->lock_fd >= 0 && errno == EWOULDBLOCK;
        rc = dagi_error_set(err, busy ? DAGI_EEXIST : DAGI_EIO, "natsd: %s: %s", lock_path,
                            busy ? "another dagi node runs on this data dir" : strerror(errno));
        free(lock_path);
        goto out;
    }
    free(lock_path);
    d->conf_path = dagi_xasprintf("%s/nats.conf", d->dir);
    d->cred_path = dagi_xasprintf("%s/credentials", d->dir);
    d->pid_path = dagi_xasprintf("%s/nats.pid", d->dir);
    d->port_path = dagi_xasprintf("%s/port", d->dir);
    d->log_path = dagi_xasprintf("%s/nats-server.log", d->dir);
    d->ports_dir = dagi_xasprintf("%s/ports", d->dir);
    d->store_dir = dagi_xasprintf("%s/jetstream", d->dir);
    snprintf(d->server_name, sizeof(d->server_name), "dagi-%08x", fnv1a(d->dir));
    if ((rc = make_private_dir(d->ports_dir, true, err)) < 0 ||
        (rc = make_private_dir(d->store_dir, true, err)) < 0 || (rc = load_credentials(d, err)) < 0)
        goto out;

    stop_stale_server(d);
    if ((rc = write_conf(d, choose_port(d), err)) < 0 || (rc = spawn(d, err)) < 0)
        goto out;

    int64_t deadline = dagi_clock_mono_ns() + (int64_t)d->start_timeout_ms * 1000000;
    for (;;) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            char status_text[32], tail[300];
            describe_status(status, status_text, sizeof(status_text));
            log_tail(d, tail, sizeof(tail));
            d->pid = 0;
            rc = dagi_error_set(err, DAGI_EUNAVAIL, "natsd: %s exited (%s): %s", d->binary,
                                status_text, tail);
            goto out;
        }
        if (child_ready(d))
            break;
        if (dagi_clock_mono_ns() >= deadline) {
            char tail[300];
            log_tail(d, tail, sizeof(tail));
            rc = dagi_error_set(err, DAGI_ETIMEDOUT, "natsd: %s not ready after %u ms: %s",
                                d->binary, d->start_timeout_ms, tail);
            goto out;
        }
        sleep_ms(NATSD_POLL_MS);
    }

    d->sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, d);
    d->backstop_ev = event_new(base, -1, EV_PERSIST, on_backstop, d);
    d->timer_ev = evtimer_new(base, on_timer, d);
    struct timeval second = {1, 0};
    if (!d->sigchld_ev || !d->backstop_ev || !d->timer_ev ||
        evsignal_add(d->sigchld_ev, NULL) < 0 || event_add(d->backstop_ev, &second) < 0) {
        rc = dagi_error_set(err, DAGI_EINTERNAL, "natsd: cannot watch the child on the loop");
        goto out;
    }
    d->state = NATSD_RUNNING;
    char pid_text[24];
    snprintf(pid_text, sizeof(pid_text), "%ld", (long)d->pid);
    dagi_log_info(NULL, "nats-server started", "url", d->url, "pid", pid_text, "dir", d->dir);
    *out = d;
    return DAGI_OK;
out:
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        int status;
        while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
            ;
        remove_ports_files(d, d->pid);
    }
    natsd_free(d);
    return rc;
}

const char *dagi_natsd_url(struct dagi_natsd *d)
{
    return d->url;
}

const char *dagi_natsd_user(struct dagi_natsd *d)
{
    (void)d;
    return NATSD_USER;
}

const char *dagi_natsd_password(struct dagi_natsd *d)
{
    return d->password;
}

pid_t dagi_natsd_pid(struct dagi_natsd *d)
{
    return d->pid;
}

void dagi_natsd_stop(struct dagi_natsd *d)
{
    if (!d)
        return;
    /* Events first: the exit we cause must not look like a crash. */
    if (d->sigchld_ev)
        event_del(d->sigchld_ev);
    if (d->pid > 0) {
        char pid_text[24];
        snprintf(pid_text, sizeof(pid_text), "%ld", (long)d->pid);
        terminate(d->pid, true, NATSD_STOP_GRACE_MS);
        remove_ports_files(d, d->pid);
        unlink(d->pid_path);
        dagi_log_info(NULL, "nats-server stopped", "pid", pid_text);
    }
    natsd_free(d);
}
