/* Test fixture: a throwaway PostgreSQL 15 server on a free loopback port,
 * its cluster in a temp dir, stopped by its PID.  Header-only so each test
 * program includes it once.  Needs libpq (the program links it anyway).
 *
 *   struct pg_fixture f;
 *   if (!pg_fixture_available()) skip();
 *   pg_fixture_start(&f);          // f.url = postgres://postgres@127.0.0.1:PORT/dagi_test
 *   ...
 *   pg_fixture_stop(&f);
 *
 * initdb and postgres refuse to run as root, and tests run as root in CI:
 * as root, initdb runs through `runuser -u postgres`, and the server is
 * forked and drops to the postgres user itself (runuser would stay in
 * between as the parent, and the PID to signal would be runuser's).  The
 * server dies with the test program (PR_SET_PDEATHSIG), and its log stays
 * in the temp dir until stop; start prints it when the server fails. */
#ifndef DAGI_TEST_PG_FIXTURE_H
#define DAGI_TEST_PG_FIXTURE_H

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PG_FIXTURE_BIN /* overridable to try the skip path */
#define PG_FIXTURE_BIN "/usr/lib/postgresql/15/bin"
#endif

struct pg_fixture {
    pid_t pid;
    int port;
    char dir[256];      /* temp root, 0755; dir/pg belongs to the server's user */
    char url[256];      /* the dagi_test database */
    char conninfo[256]; /* the same for libpq, keyword form */
    uid_t uid;          /* the server's user: postgres when we are root */
    gid_t gid;
};

static bool pg_fixture_available(void)
{
    return access(PG_FIXTURE_BIN "/initdb", X_OK) == 0 &&
           access(PG_FIXTURE_BIN "/postgres", X_OK) == 0;
}

static void pg_fixture_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port nobody listens on right now (the server may still lose a race for
 * it; start then tries another). */
static int pg_fixture_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void pg_fixture_dump(const char *path)
{
    FILE *fp = fopen(path, "r");
    char line[512];
    if (!fp)
        return;
    fprintf(stderr, "--- %s ---\n", path);
    while (fgets(line, sizeof(line), fp))
        fputs(line, stderr);
    fclose(fp);
}

/* In a child: stdout and stderr to `log`. */
static void pg_fixture_redirect(const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
}

static int pg_fixture_initdb(struct pg_fixture *f)
{
    char data[300], log[300];
    snprintf(data, sizeof(data), "%s/pg/data", f->dir);
    snprintf(log, sizeof(log), "%s/initdb.log", f->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        pg_fixture_redirect(log);
        if (geteuid() == 0)
            execl("/usr/sbin/runuser", "runuser", "-u", "postgres", "--", PG_FIXTURE_BIN "/initdb",
                  "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync", (char *)NULL);
        else
            execl(PG_FIXTURE_BIN "/initdb", "initdb", "-D", data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        pg_fixture_dump(log);
        return -1;
    }
    return 0;
}

static pid_t pg_fixture_spawn(struct pg_fixture *f)
{
    char data[300], sock[300], log[300], port[16];
    snprintf(data, sizeof(data), "%s/pg/data", f->dir);
    snprintf(sock, sizeof(sock), "%s/pg", f->dir);
    snprintf(log, sizeof(log), "%s/pg/postgres.log", f->dir);
    snprintf(port, sizeof(port), "%d", f->port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    pg_fixture_redirect(log);
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(f->gid) != 0 || setuid(f->uid) != 0))
        _exit(126);
    /* after setuid: a change of credentials clears the death signal */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    execl(PG_FIXTURE_BIN "/postgres", "postgres", "-D", data, "-p", port, "-k", sock, "-c",
          "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
          "full_page_writes=off", "-c", "max_connections=60", (char *)NULL);
    _exit(127);
}

static void pg_fixture_kill(struct pg_fixture *f)
{
    if (f->pid <= 0)
        return;
    int status;
    bool reaped = false;
    kill(f->pid, SIGINT); /* "fast" shutdown: aborts sessions, no waiting for clients */
    for (int i = 0; i < 500 && !reaped; i++) {
        reaped = waitpid(f->pid, &status, WNOHANG) == f->pid;
        if (!reaped)
            pg_fixture_sleep_ms(20);
    }
    if (!reaped) { /* never signal a PID already reaped: it may be reused */
        kill(f->pid, SIGKILL);
        waitpid(f->pid, &status, 0);
    }
    f->pid = 0;
}

/* Waits until the server takes connections (up to 30 s); 1 when up, 0 when
 * the server exited (a lost port race), -1 on timeout. */
static int pg_fixture_wait(struct pg_fixture *f)
{
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2", f->port);
    for (int i = 0; i < 600; i++) {
        PGconn *pg = PQconnectdb(conninfo);
        bool ok = PQstatus(pg) == CONNECTION_OK;
        if (ok) {
            PGresult *res = PQexec(pg, "CREATE DATABASE dagi_test");
            ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (!ok)
                fprintf(stderr, "pg_fixture: %s", PQerrorMessage(pg));
            PQclear(res);
            PQfinish(pg);
            return ok ? 1 : -1;
        }
        PQfinish(pg);
        int status;
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            return 0;
        }
        pg_fixture_sleep_ms(50);
    }
    return -1;
}

static int pg_fixture_start(struct pg_fixture *f)
{
    char pgdir[300], log[300];
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/dagi-pg-XXXXXX");
    if (!mkdtemp(f->dir) || chmod(f->dir, 0755) != 0)
        return -1;
    snprintf(pgdir, sizeof(pgdir), "%s/pg", f->dir);
    snprintf(log, sizeof(log), "%s/pg/postgres.log", f->dir);
    if (mkdir(pgdir, 0700) != 0)
        return -1;
    f->uid = geteuid();
    f->gid = getegid();
    if (f->uid == 0) { /* looked up here: getpwnam is not safe after fork */
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pgdir, pw->pw_uid, pw->pw_gid) != 0)
            return -1;
        f->uid = pw->pw_uid;
        f->gid = pw->pw_gid;
    }
    if (pg_fixture_initdb(f) != 0)
        return -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        f->port = pg_fixture_free_port();
        if (f->port < 0)
            return -1;
        f->pid = pg_fixture_spawn(f);
        if (f->pid < 0)
            return -1;
        int up = pg_fixture_wait(f);
        if (up == 1) {
            snprintf(f->url, sizeof(f->url), "postgres://postgres@127.0.0.1:%d/dagi_test", f->port);
            snprintf(f->conninfo, sizeof(f->conninfo),
                     "host=127.0.0.1 port=%d user=postgres dbname=dagi_test", f->port);
            return 0;
        }
        pg_fixture_kill(f);
        if (up < 0)
            break;
    }
    pg_fixture_dump(log);
    return -1;
}

static void pg_fixture_stop(struct pg_fixture *f)
{
    pg_fixture_kill(f);
    if (!f->dir[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    f->dir[0] = '\0';
}

#endif
