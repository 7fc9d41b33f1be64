/* The embedded bus server: nats-server as a supervised child (natsd.h).
 * This file starts the child, waits until it is ready, reaps and restarts
 * it, and stops it; what it keeps under <data_dir>/nats/ (nats.conf, the
 * credentials, the port and ports files, the lock, the pid file) and the
 * stopping of a stale server left by a crashed run are natsd_files.c's.
 * The child's output goes to <data_dir>/nats/nats-server.log, rotated here.
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

#include "bus/natsd_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

#define NATSD_DEFAULT_PAYLOAD ((size_t)8 << 20)
#define NATSD_MAX_PAYLOAD ((size_t)64 << 20) /* nats-server's hard limit (and max_pending) */
#define NATSD_DEFAULT_START_MS 10000u
#define NATSD_BACKOFF_MIN_MS 100u
#define NATSD_BACKOFF_MAX_MS 5000u
#define NATSD_HEALTHY_NS (10LL * 1000000000LL) /* up this long: the back-off starts over */
#define NATSD_LOG_ROTATE_BYTES (10L << 20)

void natsd_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --- the child --- */

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
    int port = natsd_read_ports_file(d);
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
    natsd_write_file(d->port_path, text, &ignored); /* only a hint for the next start */
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
    natsd_remove_ports_files(d, d->pid);
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
    int rc = natsd_write_conf(d, natsd_choose_port(d), &err);
    if (rc == DAGI_OK) {
        natsd_remove_ports_files(d, 0);
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

    if ((rc = natsd_make_private_dir(opts->data_dir, false, err)) < 0)
        goto out;
    char *rel = dagi_xasprintf("%s/nats", opts->data_dir);
    rc = natsd_make_private_dir(rel, true, err);
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
    if ((rc = natsd_lock_dir(d, err)) < 0)
        goto out;
    d->conf_path = dagi_xasprintf("%s/nats.conf", d->dir);
    d->cred_path = dagi_xasprintf("%s/credentials", d->dir);
    d->pid_path = dagi_xasprintf("%s/nats.pid", d->dir);
    d->port_path = dagi_xasprintf("%s/port", d->dir);
    d->log_path = dagi_xasprintf("%s/nats-server.log", d->dir);
    d->ports_dir = dagi_xasprintf("%s/ports", d->dir);
    d->store_dir = dagi_xasprintf("%s/jetstream", d->dir);
    snprintf(d->server_name, sizeof(d->server_name), "dagi-%08x", fnv1a(d->dir));
    if ((rc = natsd_make_private_dir(d->ports_dir, true, err)) < 0 ||
        (rc = natsd_make_private_dir(d->store_dir, true, err)) < 0 ||
        (rc = natsd_load_credentials(d, err)) < 0)
        goto out;

    natsd_stop_stale_server(d);
    if ((rc = natsd_write_conf(d, natsd_choose_port(d), err)) < 0 || (rc = spawn(d, err)) < 0)
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
        natsd_sleep_ms(NATSD_POLL_MS);
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
        natsd_remove_ports_files(d, d->pid);
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
        natsd_terminate(d->pid, true, NATSD_STOP_GRACE_MS);
        natsd_remove_ports_files(d, d->pid);
        unlink(d->pid_path);
        dagi_log_info(NULL, "nats-server stopped", "pid", pid_text);
    }
    natsd_free(d);
}
