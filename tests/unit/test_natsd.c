/* The embedded bus server (natsd.h) against the real nats-server, and the
 * configs in deploy/nats/ (parsed with `nats-server -t`, and the single
 * server run for real to check the role permissions).
 *
 * The tests that fork come first, before libnats has started its threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <nats/nats.h>

#include "bus/natsd.h"
#include "core/log.h"

static const char *const roles[] = {"GATEWAY",  "INGEST", "ROUTER", "SWAPPER", "MEMORY", "WORKER",
                                    "REGISTRY", "PDP",    "AUDIT",  "NODE",    "ADMIN"};

/* --- helpers --- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int on_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

struct tmp {
    char dir[128];
    char data[160];
};

static void tmp_make(struct tmp *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/dagi-natsd-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->data, sizeof(t->data), "%s/data", t->dir);
}

static void tmp_remove(struct tmp *t)
{
    nftw(t->dir, on_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Alive, or a zombie whose other threads are still exiting (and holding
 * its sockets).  A zombie nobody reaps (the container's init may not) with
 * only its leader left counts as dead. */
static bool alive(pid_t pid)
{
    if (kill(pid, 0) < 0)
        return false;
    char path[64], text[512] = {0};
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    if (!(p && (p[2] == 'Z' || p[2] == 'X')))
        return true;
    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    DIR *dd = opendir(path);
    int tasks = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        tasks += e->d_name[0] != '.';
    if (dd)
        closedir(dd);
    return tasks > 1;
}

static bool wait_dead(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        if (!alive(pid))
            return true;
        sleep_ms(20);
    }
    return !alive(pid);
}

static int start_natsd(struct event_base *base, const char *data_dir, struct dagi_natsd **out)
{
    struct dagi_natsd_opts opts = {
        .data_dir = data_dir, .binary = "nats-server", .start_timeout_ms = 10000};
    struct dagi_error err = {0};
    int rc = dagi_natsd_start(base, &opts, out, &err);
    if (rc < 0)
        fprintf(stderr, "# dagi_natsd_start: %s\n", err.message);
    return rc;
}

static void run_loop_ms(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static mode_t file_mode(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static natsStatus connect_as(const char *url, const char *user, const char *password,
                             natsErrHandler on_error, void *ud, natsConnection **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK && user)
        s = natsOptions_SetUserInfo(o, user, password);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK && on_error)
        s = natsOptions_SetErrorHandler(o, on_error, ud);
    if (s == NATS_OK)
        s = natsConnection_Connect(out, o);
    natsOptions_Destroy(o);
    return s;
}

/* Publish and receive on one connection: the server routes messages. */
static void assert_roundtrip(natsConnection *nc)
{
    natsSubscription *sub = NULL;
    natsMsg *msg = NULL;
    assert_int_equal(natsConnection_SubscribeSync(&sub, nc, "natsd.test"), NATS_OK);
    assert_int_equal(natsConnection_PublishString(nc, "natsd.test", "hello"), NATS_OK);
    assert_int_equal(natsSubscription_NextMsg(&msg, sub, 2000), NATS_OK);
    assert_string_equal(natsMsg_GetData(msg), "hello");
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
}

/* A fresh connection with the node's credentials works. */
static bool can_connect(struct dagi_natsd *d)
{
    natsConnection *nc = NULL;
    if (connect_as(dagi_natsd_url(d), dagi_natsd_user(d), dagi_natsd_password(d), NULL, NULL,
                   &nc) != NATS_OK)
        return false;
    natsConnection_Destroy(nc);
    return true;
}

/* Runs nats-server with argv (NULL-terminated after argv[0] = "nats-server"). */
static pid_t spawn_server(char *const argv[], bool quiet)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("nats-server", argv);
        _exit(127);
    }
    return pid;
}

/* The client port from the ports file of `pid` in dir; 0 if none yet. */
static int ports_file_port(const char *dir, pid_t pid)
{
    char want[32];
    snprintf(want, sizeof(want), "_%ld.ports", (long)pid);
    DIR *dd = opendir(dir);
    int port = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        size_t n = strlen(e->d_name), wn = strlen(want);
        if (n <= wn || strcmp(e->d_name + n - wn, want) != 0)
            continue;
        char path[512], text[1024] = {0};
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[got] = '\0';
        const char *p = strstr(text, "nats://127.0.0.1:");
        if (p && strchr(p, ']'))
            port = atoi(p + strlen("nats://127.0.0.1:"));
    }
    if (dd)
        closedir(dd);
    return port;
}

static int wait_ports_file(const char *dir, pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        int port = ports_file_port(dir, pid);
        if (port)
            return port;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return 0;
        sleep_ms(20);
    }
    return 0;
}

static void stop_server(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    for (int i = 0; i < 250 && waitpid(pid, &status, WNOHANG) == 0; i++)
        sleep_ms(20);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* deploy/nats/ of the source tree: found from the build dir meson runs
 * tests in, or from the working directory upwards. */
static const char *deploy_dir(void)
{
    static char dir[1024];
    char file[1024];
    snprintf(file, sizeof(file), "%s", __FILE__);
    char *cut = strstr(file, "tests/unit/test_natsd.c");
    if (cut) {
        snprintf(cut, sizeof(file) - (size_t)(cut - file), "deploy/nats");
        snprintf(dir, sizeof(dir), "%s", file[0] ? file : ".");
        char probe[1100];
        snprintf(probe, sizeof(probe), "%s/users.conf", dir);
        if (access(probe, R_OK) == 0)
            return dir;
    }
    const char *up = "";
    for (int i = 0; i < 6; i++) {
        snprintf(dir, sizeof(dir), "%sdeploy/nats", up);
        char probe[1100];
        snprintf(probe, sizeof(probe), "%s/users.conf", dir);
        if (access(probe, R_OK) == 0)
            return dir;
        static const char *const ups[] = {"../",          "../../",          "../../../",
                                          "../../../../", "../../../../../", "../../../../../../"};
        up = ups[i];
    }
    fail_msg("deploy/nats not found from %s", __FILE__);
    return NULL;
}

static void set_role_passwords(void)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        char name[64], value[64];
        snprintf(name, sizeof(name), "DAGI_NATS_%s_PASSWORD", roles[i]);
        snprintf(value, sizeof(value), "p%s%08x", roles[i], (unsigned)getpid());
        setenv(name, value, 1);
    }
}

static const char *role_password(const char *role)
{
    char name[64];
    snprintf(name, sizeof(name), "DAGI_NATS_%s_PASSWORD", role);
    return getenv(name);
}

/* --- tests that fork (run before libnats starts threads) --- */

struct child_report {
    pid_t server;
    char url[64];
};

/* The node dies by SIGKILL: PDEATHSIG takes nats-server with it. */
static void test_dies_with_parent(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t node = fork();
    assert_true(node >= 0);
    if (node == 0) {
        close(fds[0]);
        struct event_base *base = event_base_new();
        struct dagi_natsd *d = NULL;
        if (!base || start_natsd(base, t.data, &d) < 0)
            _exit(1);
        struct child_report r = {.server = dagi_natsd_pid(d)};
        snprintf(r.url, sizeof(r.url), "%s", dagi_natsd_url(d));
        if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    struct child_report r = {0};
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 15000), 1);
    assert_int_equal(read(fds[0], &r, sizeof(r)), (ssize_t)sizeof(r));
    close(fds[0]);
    assert_true(r.server > 0);
    assert_true(alive(r.server));

    kill(node, SIGKILL);
    int status;
    assert_int_equal(waitpid(node, &status, 0), node);
    assert_true(wait_dead(r.server, 5000));

    /* The next start on the same data dir gets the same port back. */
    struct event_base *base = event_base_new();
    struct dagi_natsd *d = NULL;
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    assert_string_equal(dagi_natsd_url(d), r.url);
    dagi_natsd_stop(d);
    event_base_free(base);
    tmp_remove(&t);
}

/* A server that outlived its node (started without PDEATHSIG) is stopped
 * by the next start, which then runs fresh on the same store and port. */
static void test_stale_server_stopped(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct event_base *base = event_base_new();
    struct dagi_natsd *d = NULL;
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    char url[64];
    snprintf(url, sizeof(url), "%s", dagi_natsd_url(d));
    dagi_natsd_stop(d);

    char conf[256], ports[256];
    snprintf(conf, sizeof(conf), "%s/nats/nats.conf", t.data);
    snprintf(ports, sizeof(ports), "%s/nats/ports", t.data);
    char *argv[] = {"nats-server", "-c", conf, NULL};
    pid_t stale = spawn_server(argv, true);
    assert_true(stale > 0);
    assert_true(wait_ports_file(ports, stale) > 0);

    assert_int_equal(start_natsd(base, t.data, &d), 0);
    int status;
    assert_int_equal(waitpid(stale, &status, WNOHANG), stale); /* already dead */
    assert_true(dagi_natsd_pid(d) != stale);
    assert_string_equal(dagi_natsd_url(d), url);
    dagi_natsd_stop(d);
    event_base_free(base);
    tmp_remove(&t);
}

/* A binary that cannot run: the start fails and says why. */
static void test_bad_binary(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct event_base *base = event_base_new();
    struct dagi_natsd_opts opts = {.data_dir = t.data, .binary = "/nonexistent/nats-server"};
    struct dagi_natsd *d = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_natsd_start(base, &opts, &d, &err), DAGI_EUNAVAIL);
    assert_null(d);
    assert_non_null(strstr(err.message, "exit 127"));
    assert_non_null(strstr(err.message, "cannot execute"));
    opts.max_payload = (size_t)65 << 20;
    assert_int_equal(dagi_natsd_start(base, &opts, &d, &err), DAGI_EINVAL);
    event_base_free(base);
    tmp_remove(&t);
}

/* --- tests with libnats --- */

static void test_start_auth_jetstream(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct event_base *base = event_base_new();
    struct dagi_natsd *d = NULL;
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    assert_true(strncmp(dagi_natsd_url(d), "nats://127.0.0.1:", 17) == 0);
    assert_string_equal(dagi_natsd_user(d), "dagi");
    assert_true(strlen(dagi_natsd_password(d)) >= 43);
    pid_t pid = dagi_natsd_pid(d);
    assert_true(pid > 0);

    char dir[256];
    snprintf(dir, sizeof(dir), "%s/nats", t.data);
    assert_int_equal(file_mode(t.data, "nats"), 0700);
    assert_int_equal(file_mode(dir, "nats.conf"), 0600);
    assert_int_equal(file_mode(dir, "credentials"), 0600);

    natsConnection *nc = NULL;
    assert_int_equal(connect_as(dagi_natsd_url(d), "dagi", dagi_natsd_password(d), NULL, NULL, &nc),
                     NATS_OK);
    assert_roundtrip(nc);

    jsCtx *js = NULL;
    jsAccountInfo *ai = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    assert_int_equal(js_GetAccountInfo(&ai, js, NULL, &jerr), NATS_OK);
    jsAccountInfo_Destroy(ai);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);

    /* No anonymous access, no wrong password. */
    nc = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, dagi_natsd_url(d));
    assert_int_not_equal(s, NATS_OK);
    assert_true(s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED);
    assert_int_not_equal(connect_as(dagi_natsd_url(d), "dagi", "wrong", NULL, NULL, &nc), NATS_OK);

    /* A second node on the same data dir is refused and leaves ours alone. */
    struct dagi_natsd *twin = NULL;
    struct dagi_natsd_opts opts = {.data_dir = t.data};
    struct dagi_error err = {0};
    assert_int_equal(dagi_natsd_start(base, &opts, &twin, &err), DAGI_EEXIST);
    assert_null(twin);
    assert_int_equal(dagi_natsd_pid(d), pid);
    assert_true(can_connect(d));

    dagi_natsd_stop(d);
    assert_false(alive(pid));
    assert_int_equal(ports_file_port(dir, pid), 0);
    event_base_free(base);
    tmp_remove(&t);
}

/* The credentials (and the store) survive a restart of the node. */
static void test_credentials_reused(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct event_base *base = event_base_new();
    struct dagi_natsd *d = NULL;
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    char password[64], url[64];
    snprintf(password, sizeof(password), "%s", dagi_natsd_password(d));
    snprintf(url, sizeof(url), "%s", dagi_natsd_url(d));

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(connect_as(url, "dagi", password, NULL, NULL, &nc), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"keep.>"};
    cfg.Name = "KEEP";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    assert_int_equal(js_AddStream(&si, js, &cfg, NULL, &jerr), NATS_OK);
    jsStreamInfo_Destroy(si);
    assert_int_equal(js_Publish(NULL, js, "keep.one", "1", 1, NULL, &jerr), NATS_OK);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    dagi_natsd_stop(d);

    char cred[256];
    snprintf(cred, sizeof(cred), "%s/nats/credentials", t.data);
    assert_int_equal(chmod(cred, 0644), 0); /* someone loosened it: tightened again */
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    assert_string_equal(dagi_natsd_password(d), password);
    assert_string_equal(dagi_natsd_url(d), url);
    struct stat st;
    assert_int_equal(stat(cred, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(connect_as(url, "dagi", password, NULL, NULL, &nc), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    assert_int_equal(js_GetStreamInfo(&si, js, "KEEP", NULL, &jerr), NATS_OK);
    assert_int_equal(si->State.Msgs, 1);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    dagi_natsd_stop(d);
    event_base_free(base);
    tmp_remove(&t);
}

/* kill -9 the server: the loop restarts it on the same port, and both a
 * fresh connection and an existing one (its own reconnect) work again. */
static void test_restart_after_kill(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct event_base *base = event_base_new();
    struct dagi_natsd *d = NULL;
    assert_int_equal(start_natsd(base, t.data, &d), 0);
    char url[64];
    snprintf(url, sizeof(url), "%s", dagi_natsd_url(d));
    pid_t old = dagi_natsd_pid(d);

    natsOptions *o = NULL;
    natsConnection *kept = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    natsOptions_SetURL(o, url);
    natsOptions_SetUserInfo(o, "dagi", dagi_natsd_password(d));
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 50);
    assert_int_equal(natsConnection_Connect(&kept, o), NATS_OK);
    natsOptions_Destroy(o);

    assert_int_equal(kill(old, SIGKILL), 0);
    bool back = false;
    for (int i = 0; i < 200 && !back; i++) { /* 10 s */
        run_loop_ms(base, 50);
        pid_t now = dagi_natsd_pid(d);
        back = now > 0 && now != old && can_connect(d);
    }
    assert_true(back);
    assert_string_equal(dagi_natsd_url(d), url);

    natsStatus s = NATS_ERR;
    for (int i = 0; i < 50 && s != NATS_OK; i++) {
        s = natsConnection_FlushTimeout(kept, 200);
        if (s != NATS_OK)
            sleep_ms(100);
    }
    assert_int_equal(s, NATS_OK);
    assert_roundtrip(kept);
    natsConnection_Destroy(kept);

    /* A second crash restarts too (after a longer back-off). */
    old = dagi_natsd_pid(d);
    assert_int_equal(kill(old, SIGKILL), 0);
    back = false;
    for (int i = 0; i < 200 && !back; i++) {
        run_loop_ms(base, 50);
        pid_t now = dagi_natsd_pid(d);
        back = now > 0 && now != old && can_connect(d);
    }
    assert_true(back);
    dagi_natsd_stop(d);
    event_base_free(base);
    tmp_remove(&t);
}

/* --- deploy/nats --- */

static int run_config_test(const char *path)
{
    char *argv[] = {"nats-server", "-t", "-c", (char *)path, NULL};
    pid_t pid = spawn_server(argv, true);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_deploy_configs_parse(void **state)
{
    (void)state;
    const char *dir = deploy_dir();
    set_role_passwords();
    setenv("DAGI_NATS_SERVER_NAME", "nats-1", 1);
    setenv("DAGI_NATS_ROUTE_PASSWORD", "proute", 1);
    setenv("DAGI_NATS_LEAF_PASSWORD", "pleaf", 1);
    for (int i = 1; i <= 3; i++) {
        char name[64], value[128];
        snprintf(name, sizeof(name), "DAGI_NATS_ROUTE_%d", i);
        snprintf(value, sizeof(value), "nats-route://route:proute@nats-%d:6222", i);
        setenv(name, value, 1);
        snprintf(name, sizeof(name), "DAGI_NATS_LEAF_URL_%d", i);
        snprintf(value, sizeof(value), "nats-leaf://leaf:pleaf@nats-%d:7422", i);
        setenv(name, value, 1);
    }
    const char *files[] = {"nats-server.conf", "users.conf", "cluster.conf", "leafnode.conf"};
    int seen = 0;
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    struct dirent *e;
    while ((e = readdir(dd))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".conf") != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (run_config_test(path) != 0)
            fail_msg("nats-server -t -c %s failed", path);
        seen++;
    }
    closedir(dd);
    assert_true(seen >= (int)(sizeof(files) / sizeof(files[0])));

    /* The passwords really come from the environment. */
    char path[1200];
    snprintf(path, sizeof(path), "%s/users.conf", dir);
    unsetenv("DAGI_NATS_ROUTER_PASSWORD");
    assert_int_not_equal(run_config_test(path), 0);
    set_role_passwords();
}

struct perm_seen {
    volatile natsStatus status;
};

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *ud)
{
    (void)nc;
    (void)sub;
    struct perm_seen *seen = ud;
    seen->status = err;
}

static bool wait_status(struct perm_seen *seen, natsStatus want)
{
    for (int i = 0; i < 100 && seen->status != want; i++)
        sleep_ms(20);
    return seen->status == want;
}

static void copy_file(const char *from, const char *to, const char *store_dir)
{
    FILE *in = fopen(from, "r");
    FILE *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char line[1024];
    while (fgets(line, sizeof(line), in)) {
        /* -sd would clash with store_dir ("Duplicate 'store_dir'"), so the
         * copy run here points store_dir at the temp dir. */
        if (store_dir && strstr(line, "store_dir:"))
            fprintf(out, "  store_dir: \"%s\"\n", store_dir);
        else
            fputs(line, out);
    }
    fclose(in);
    fclose(out);
}

/* nats-server.conf + users.conf run for real: role permissions hold. */
static void test_deploy_permissions(void **state)
{
    (void)state;
    const char *dir = deploy_dir();
    set_role_passwords();
    struct tmp t;
    tmp_make(&t);
    char from[1200], conf[256], users[256], store[256];
    snprintf(store, sizeof(store), "%s/store", t.dir);
    snprintf(conf, sizeof(conf), "%s/nats-server.conf", t.dir);
    snprintf(users, sizeof(users), "%s/users.conf", t.dir);
    snprintf(from, sizeof(from), "%s/nats-server.conf", dir);
    copy_file(from, conf, store);
    snprintf(from, sizeof(from), "%s/users.conf", dir);
    copy_file(from, users, NULL);

    char *argv[] = {"nats-server",      "-c",  conf, "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
                    "--ports_file_dir", t.dir, NULL};
    pid_t server = spawn_server(argv, true);
    int port = wait_ports_file(t.dir, server);
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);

    struct perm_seen router_seen = {NATS_OK}, gateway_seen = {NATS_OK};
    natsConnection *router = NULL, *gateway = NULL, *swapper = NULL, *memory = NULL, *anon = NULL;
    assert_int_equal(
        connect_as(url, "router", role_password("ROUTER"), on_nats_error, &router_seen, &router),
        NATS_OK);
    assert_int_equal(connect_as(url, "gateway", role_password("GATEWAY"), on_nats_error,
                                &gateway_seen, &gateway),
                     NATS_OK);
    assert_int_equal(connect_as(url, "swapper", role_password("SWAPPER"), NULL, NULL, &swapper),
                     NATS_OK);
    assert_int_equal(connect_as(url, "memory", role_password("MEMORY"), NULL, NULL, &memory),
                     NATS_OK);
    assert_int_not_equal(natsConnection_ConnectTo(&anon, url), NATS_OK);
    assert_int_not_equal(connect_as(url, "router", "wrong", NULL, NULL, &anon), NATS_OK);

    /* router -> swapper: allowed. */
    natsSubscription *swapper_sub = NULL, *router_sub = NULL, *memory_sub = NULL, *bad_sub = NULL;
    natsMsg *msg = NULL;
    assert_int_equal(natsConnection_SubscribeSync(&swapper_sub, swapper, "dagi.swapper.infer"),
                     NATS_OK);
    assert_int_equal(natsConnection_Flush(swapper), NATS_OK);
    assert_int_equal(natsConnection_PublishString(router, "dagi.swapper.infer", "q"), NATS_OK);
    assert_int_equal(natsSubscription_NextMsg(&msg, swapper_sub, 2000), NATS_OK);
    natsMsg_Destroy(msg);

    /* router serves dagi.router.>; the gateway may ask it. */
    assert_int_equal(natsConnection_SubscribeSync(&router_sub, router, "dagi.router.>"), NATS_OK);
    assert_int_equal(natsConnection_Flush(router), NATS_OK);
    assert_int_equal(natsConnection_PublishString(gateway, "dagi.router.infer", "q"), NATS_OK);
    assert_int_equal(natsSubscription_NextMsg(&msg, router_sub, 2000), NATS_OK);
    natsMsg_Destroy(msg);
    assert_int_equal(router_seen.status, NATS_OK);

    /* router may not listen to the swapper's requests. */
    assert_int_equal(natsConnection_SubscribeSync(&bad_sub, router, "dagi.swapper.>"), NATS_OK);
    natsConnection_Flush(router);
    assert_true(wait_status(&router_seen, NATS_NOT_PERMITTED));
    const char *text = NULL;
    assert_int_equal(natsConnection_GetLastError(router, &text), NATS_NOT_PERMITTED);
    assert_non_null(strstr(text, "Permissions Violation"));

    /* gateway may not call memory directly. */
    assert_int_equal(natsConnection_SubscribeSync(&memory_sub, memory, "dagi.memory.>"), NATS_OK);
    assert_int_equal(natsConnection_Flush(memory), NATS_OK);
    assert_int_equal(natsConnection_PublishString(gateway, "dagi.memory.x", "q"), NATS_OK);
    natsConnection_Flush(gateway);
    assert_true(wait_status(&gateway_seen, NATS_NOT_PERMITTED));
    assert_int_equal(natsSubscription_NextMsg(&msg, memory_sub, 300), NATS_TIMEOUT);

    natsSubscription_Destroy(bad_sub);
    natsSubscription_Destroy(memory_sub);
    natsSubscription_Destroy(router_sub);
    natsSubscription_Destroy(swapper_sub);
    natsConnection_Destroy(router);
    natsConnection_Destroy(gateway);
    natsConnection_Destroy(swapper);
    natsConnection_Destroy(memory);
    stop_server(server);
    tmp_remove(&t);
}

static int teardown_all(void **state)
{
    (void)state;
    nats_CloseAndWait(0);
    return 0;
}

int main(void)
{
    dagi_log_setup(DAGI_LOG_WARN, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dies_with_parent),     cmocka_unit_test(test_stale_server_stopped),
        cmocka_unit_test(test_bad_binary),           cmocka_unit_test(test_start_auth_jetstream),
        cmocka_unit_test(test_credentials_reused),   cmocka_unit_test(test_restart_after_kill),
        cmocka_unit_test(test_deploy_configs_parse), cmocka_unit_test(test_deploy_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
