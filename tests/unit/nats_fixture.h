/* Test fixture: a real nats-server with JetStream on a loopback port of its
 * own choosing, in a temp dir, stopped by its PID.  Header-only so each test
 * program includes it once.
 *
 *   struct nats_fixture f;
 *   nats_fixture_start(&f, "user", "pass");   // NULLs = no auth
 *   ... f.url ...
 *   nats_fixture_stop(&f);
 *
 * SIGSTOP/SIGCONT on f.pid freeze and thaw it. */
#ifndef DAGI_TEST_NATS_FIXTURE_H
#define DAGI_TEST_NATS_FIXTURE_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct nats_fixture {
    pid_t pid;
    char dir[256];
    char url[128];
};

static void nats_fixture_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads "nats://127.0.0.1:PORT" out of the server's ports file. */
static int nats_fixture_read_ports(struct nats_fixture *f)
{
    DIR *d = opendir(f->dir);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = -1;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 6, ".ports") != 0)
            continue;
        char path[512], text[1024] = {0};
        snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        size_t got = fread(text, 1, sizeof(text) - 1, fp);
        fclose(fp);
        text[got] = '\0';
        char *p = strstr(text, "nats://");
        if (p) {
            char *end = strchr(p, '"');
            if (end && (size_t)(end - p) < sizeof(f->url)) {
                memcpy(f->url, p, (size_t)(end - p));
                f->url[end - p] = '\0';
                rc = 0;
            }
        }
    }
    closedir(d);
    return rc;
}

static int nats_fixture_start(struct nats_fixture *f, const char *user, const char *pass)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/dagi-nats-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char store[300];
    snprintf(store, sizeof(store), "%s/js", f->dir);
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        if (user)
            execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store,
                   "--ports_file_dir", f->dir, "--user", user, "--pass", pass, (char *)NULL);
        else
            execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store,
                   "--ports_file_dir", f->dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* 10 s */
        if (nats_fixture_read_ports(f) == 0)
            return 0;
        int status;
        if (waitpid(f->pid, &status, WNOHANG) == f->pid)
            return -1;
        nats_fixture_sleep_ms(20);
    }
    return -1;
}

static void nats_fixture_stop(struct nats_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGCONT);
        kill(f->pid, SIGTERM);
        int status;
        for (int i = 0; i < 250 && waitpid(f->pid, &status, WNOHANG) == 0; i++)
            nats_fixture_sleep_ms(20);
        kill(f->pid, SIGKILL);
        waitpid(f->pid, &status, 0);
        f->pid = 0;
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
}

#endif
