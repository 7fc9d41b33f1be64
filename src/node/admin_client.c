#include "admin_client.h"

#include "core/buf.h"
#include "core/config.h"
#include "node/dagi_config.h"
#include "core/mem.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_CAP (64u << 20)

static char *read_small_file(const char *dir, const char *name)
{
    char *path = dagi_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f)
        return NULL;
    char line[512];
    char *out = NULL;
    if (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        out = dagi_xstrdup(line);
    }
    fclose(f);
    return out;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    return dagi_buf_append(ud, data, size * n) == DAGI_OK ? size * n : 0;
}

int dagi_admin_call(const char *data_dir, const char *method, const char *path,
                    const char *json_body, long *status, char **body, struct dagi_error *err)
{
    int rc = DAGI_OK;
    char *addr = read_small_file(data_dir, "http.addr");
    char *key = read_small_file(data_dir, "admin.key");
    char *url = NULL, *auth = NULL;
    struct curl_slist *headers = NULL;
    struct dagi_buf out;
    dagi_buf_init(&out, RESPONSE_CAP);
    CURL *curl = NULL;
    if (!addr) {
        rc = dagi_error_set(err, DAGI_EUNAVAIL, "no node is running on data dir %s", data_dir);
        goto out;
    }
    if (!key) {
        rc = dagi_error_set(err, DAGI_EPERM, "cannot read %s/admin.key", data_dir);
        goto out;
    }
    curl = curl_easy_init();
    if (!curl) {
        rc = dagi_error_set(err, DAGI_EINTERNAL, "libcurl failed to initialise");
        goto out;
    }
    /* http.addr holds the listener's base URL (http:// or https://). */
    url = dagi_xasprintf("%s%s", addr, path);
    auth = dagi_xasprintf("Authorization: Bearer %s", key);
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    /* A loopback listener with TLS usually has a self-signed certificate.
     * Whoever can read admin.key already owns this node, so skipping the
     * check there gives nothing away; anywhere else it is verified. */
    if (strncmp(addr, "https://127.", 12) == 0 || strncmp(addr, "https://[::1]", 13) == 0 ||
        strncmp(addr, "https://localhost", 17) == 0) {
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
    if (json_body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        rc = dagi_error_set(err, DAGI_EUNAVAIL, "node at %s: %s", addr, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    *body = dagi_buf_detach(&out, NULL);
out:
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    curl_slist_free_all(headers);
    if (curl)
        curl_easy_cleanup(curl);
    dagi_buf_release(&out);
    free(addr);
    free(url);
    return rc;
}

extern char **environ;

const char *dagi_admin_data_dir(const char *data_dir, const char *config,
                                struct dagi_config_snapshot **snap)
{
    *snap = NULL;
    if (data_dir)
        return data_dir;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_overrides ov = {.envp = environ};
    int rc = dagi_config_snapshot_load(config && *config ? config : NULL, &ov, snap, &errs);
    if (rc)
        fputs(dagi_buf_str(&errs.text), stderr);
    dagi_cfg_errors_release(&errs);
    return rc ? NULL : (*snap)->cfg->node.data_dir;
}
