/* The control plane's documents (docset.h): kinds and names, the set, its
 * checksums, its JSON form in the KV bucket, and reading it from the files
 * the node configuration names.  Validation is docset_validate.c.
 *
 * The set is kept sorted by (kind, name), so its JSON form is the same for
 * the same documents whatever order they were put in, and two publishes of
 * one set compare equal byte for byte. */
#include "cplane/docset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "node/dagi_config.h"

static const char *const kind_names[DAGI_DOC_KIND_COUNT] = {
    "agents", "prompts", "routing", "policies", "quotas", "flags", "lists",
};

static const char *const fixed_names[DAGI_DOC_KIND_COUNT] = {
    "agent_registry.yml", NULL, "routing.yml", "policy.yml", "quotas.yml", "flags.yml", "lists.yml",
};

const char *dagi_doc_kind_name(enum dagi_doc_kind k)
{
    return (unsigned)k < DAGI_DOC_KIND_COUNT ? kind_names[k] : NULL;
}

int dagi_doc_kind_parse(const char *name, enum dagi_doc_kind *out)
{
    for (unsigned k = 0; name && k < DAGI_DOC_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (enum dagi_doc_kind)k;
            return DAGI_OK;
        }
    return DAGI_EINVAL;
}

const char *dagi_doc_fixed_name(enum dagi_doc_kind k)
{
    return (unsigned)k < DAGI_DOC_KIND_COUNT ? fixed_names[k] : NULL;
}

bool dagi_doc_name_valid(enum dagi_doc_kind k, const char *name)
{
    if ((unsigned)k >= DAGI_DOC_KIND_COUNT || !name)
        return false;
    if (fixed_names[k])
        return strcmp(name, fixed_names[k]) == 0;
    size_t n = strlen(name);
    if (n == 0 || n > DAGI_DOC_MAX_NAME || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

void dagi_doc_checksum(const char *text, size_t len, char out[65])
{
    unsigned char hash[32];
    crypto_generichash(hash, sizeof(hash), (const unsigned char *)text, len, NULL, 0);
    sodium_bin2hex(out, 65, hash, sizeof(hash));
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF) and no
 * NUL: a document is stored as TEXT (PostgreSQL refuses NUL there) and
 * travels as a JSON string (jansson refuses invalid UTF-8). */
static bool text_ok(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c == 0)
            return false;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - s) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

/* --- the set --- */

void dagi_docset_init(struct dagi_docset *s)
{
    memset(s, 0, sizeof(*s));
}

static void doc_release(struct dagi_doc *d)
{
    free(d->name);
    free(d->text);
    free(d->author);
}

void dagi_docset_release(struct dagi_docset *s)
{
    for (size_t i = 0; i < s->count; i++)
        doc_release(&s->docs[i]);
    free(s->docs);
    dagi_docset_init(s);
}

void dagi_docset_copy(struct dagi_docset *dst, const struct dagi_docset *src)
{
    dagi_docset_init(dst);
    dst->revision = src->revision;
    dst->published_at_ms = src->published_at_ms;
    dst->cap = dst->count = src->count;
    dst->docs = dagi_xcalloc(src->count ? src->count : 1, sizeof(*dst->docs));
    for (size_t i = 0; i < src->count; i++) {
        const struct dagi_doc *a = &src->docs[i];
        struct dagi_doc *b = &dst->docs[i];
        *b = *a;
        b->name = dagi_xstrdup(a->name);
        b->text = dagi_xmalloc(a->len + 1);
        memcpy(b->text, a->text, a->len);
        b->text[a->len] = '\0';
        b->author = a->author ? dagi_xstrdup(a->author) : NULL;
    }
}

static int doc_cmp(enum dagi_doc_kind k, const char *name, const struct dagi_doc *d)
{
    if (k != d->kind)
        return k < d->kind ? -1 : 1;
    return strcmp(name, d->name);
}

/* The index of (k, name), or of where it would go; *found says which. */
static size_t doc_slot(const struct dagi_docset *s, enum dagi_doc_kind k, const char *name,
                       bool *found)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = doc_cmp(k, name, &s->docs[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

const struct dagi_doc *dagi_docset_find(const struct dagi_docset *s, enum dagi_doc_kind k,
                                        const char *name)
{
    bool found;
    if (!name)
        return NULL;
    size_t i = doc_slot(s, k, name, &found);
    return found ? &s->docs[i] : NULL;
}

int dagi_docset_put(struct dagi_docset *s, enum dagi_doc_kind k, const char *name, const char *text,
                    size_t len, int64_t version, const char *author, int64_t created_at_ms,
                    struct dagi_error *err)
{
    if (!dagi_doc_name_valid(k, name))
        return dagi_error_set(err, DAGI_EINVAL, "%s/%.*s: not a valid document name",
                              dagi_doc_kind_name(k) ? dagi_doc_kind_name(k) : "?",
                              DAGI_DOC_MAX_NAME, name ? name : "");
    if (len > DAGI_DOC_MAX_TEXT)
        return dagi_error_set(err, DAGI_ETOOBIG, "%s/%s: %zu bytes, over the cap of %d",
                              kind_names[k], name, len, DAGI_DOC_MAX_TEXT);
    if (!text_ok(text, len))
        return dagi_error_set(err, DAGI_EINVAL, "%s/%s: the text is not UTF-8 or holds a NUL",
                              kind_names[k], name);
    bool found;
    size_t i = doc_slot(s, k, name, &found);
    if (!found) {
        if (s->count >= DAGI_DOCSET_MAX_DOCS)
            return dagi_error_set(err, DAGI_ETOOBIG, "more than %d documents",
                                  DAGI_DOCSET_MAX_DOCS);
        if (s->count == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->docs = dagi_xrealloc(s->docs, s->cap * sizeof(*s->docs));
        }
        memmove(&s->docs[i + 1], &s->docs[i], (s->count - i) * sizeof(*s->docs));
        s->count++;
        memset(&s->docs[i], 0, sizeof(s->docs[i]));
        s->docs[i].kind = k;
        s->docs[i].name = dagi_xstrdup(name);
    }
    struct dagi_doc *d = &s->docs[i];
    char *copy = dagi_xmalloc(len + 1);
    if (len)
        memcpy(copy, text, len);
    copy[len] = '\0';
    free(d->text);
    free(d->author);
    d->text = copy;
    d->len = len;
    d->version = version;
    d->author = author ? dagi_xstrdup(author) : NULL;
    d->created_at_ms = created_at_ms;
    dagi_doc_checksum(copy, len, d->checksum);
    return DAGI_OK;
}

bool dagi_docset_remove(struct dagi_docset *s, enum dagi_doc_kind k, const char *name)
{
    bool found;
    if (!name)
        return false;
    size_t i = doc_slot(s, k, name, &found);
    if (!found)
        return false;
    doc_release(&s->docs[i]);
    memmove(&s->docs[i], &s->docs[i + 1], (s->count - i - 1) * sizeof(*s->docs));
    s->count--;
    return true;
}

/* --- JSON (the KV value) --- */

char *dagi_docset_to_json(const struct dagi_docset *s, size_t *len_out)
{
    json_t *docs = json_array();
    for (size_t i = 0; i < s->count; i++) {
        const struct dagi_doc *d = &s->docs[i];
        json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I}", "kind", kind_names[d->kind], "name", d->name,
                              "version", (json_int_t)d->version, "checksum", d->checksum,
                              "created_at_ms", (json_int_t)d->created_at_ms);
        json_object_set_new(o, "author", d->author ? json_string(d->author) : json_null());
        /* put() and from_json() admit only UTF-8 without NUL, so this
         * never fails; abort rather than publish a set missing a text. */
        json_t *text = json_stringn(d->text, d->len);
        if (!o || !text)
            abort();
        json_object_set_new(o, "text", text);
        json_array_append_new(docs, o);
    }
    json_t *root = json_pack("{s:I,s:I,s:o}", "revision", (json_int_t)s->revision,
                             "published_at_ms", (json_int_t)s->published_at_ms, "docs", docs);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!out)
        abort(); /* out of memory */
    if (len_out)
        *len_out = strlen(out);
    return out;
}

static int bad(struct dagi_error *err, size_t i, const char *what)
{
    return dagi_error_set(err, DAGI_EINVAL, "docs[%zu]: %s", i, what);
}

static int doc_from_json(json_t *o, size_t i, struct dagi_docset *set, struct dagi_error *err)
{
    if (!json_is_object(o))
        return bad(err, i, "not an object");
    json_t *kind = json_object_get(o, "kind"), *name = json_object_get(o, "name"),
           *text = json_object_get(o, "text"), *sum = json_object_get(o, "checksum"),
           *version = json_object_get(o, "version"), *author = json_object_get(o, "author"),
           *created = json_object_get(o, "created_at_ms");
    enum dagi_doc_kind k;
    if (!json_is_string(kind) || dagi_doc_kind_parse(json_string_value(kind), &k))
        return bad(err, i, "kind is not one of the document kinds");
    if (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name) ||
        !dagi_doc_name_valid(k, json_string_value(name)))
        return bad(err, i, "name is not a valid name for its kind");
    if (!json_is_string(text))
        return bad(err, i, "text is not a string");
    if (json_string_length(text) > DAGI_DOC_MAX_TEXT)
        return dagi_error_set(err, DAGI_ETOOBIG, "docs[%zu]: text over the cap of %d bytes", i,
                              DAGI_DOC_MAX_TEXT);
    if (!json_is_string(sum) || json_string_length(sum) != 64)
        return bad(err, i, "checksum is not 64 hex digits");
    if (version && !(json_is_integer(version) && json_integer_value(version) >= 0))
        return bad(err, i, "version is not a whole number");
    if (author && !json_is_null(author) &&
        !(json_is_string(author) &&
          strlen(json_string_value(author)) == json_string_length(author)))
        return bad(err, i, "author is not a string");
    if (created && !json_is_integer(created))
        return bad(err, i, "created_at_ms is not an integer");
    if (dagi_docset_find(set, k, json_string_value(name)))
        return bad(err, i, "a second document of the same kind and name");
    int rc = dagi_docset_put(set, k, json_string_value(name), json_string_value(text),
                             json_string_length(text),
                             version ? (int64_t)json_integer_value(version) : 0,
                             json_is_string(author) ? json_string_value(author) : NULL,
                             created ? (int64_t)json_integer_value(created) : 0, err);
    if (rc)
        return rc;
    /* A text cut short or altered on the way must not be run as if whole. */
    const struct dagi_doc *d = dagi_docset_find(set, k, json_string_value(name));
    if (sodium_memcmp(d->checksum, json_string_value(sum), 64) != 0)
        return dagi_error_set(err, DAGI_EINVAL,
                              "docs[%zu] %s/%s: the checksum does not match the "
                              "text",
                              i, kind_names[k], d->name);
    return DAGI_OK;
}

int dagi_docset_from_json(const char *data, size_t len, struct dagi_docset *out,
                          struct dagi_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    struct dagi_docset set;
    dagi_docset_init(&set);
    int rc = DAGI_OK;
    if (!root)
        return dagi_error_set(err, DAGI_EPARSE, "config set: %s at offset %d", jerr.text,
                              jerr.position);
    json_t *revision = json_object_get(root, "revision"),
           *published = json_object_get(root, "published_at_ms"),
           *docs = json_object_get(root, "docs");
    if (!json_is_object(root) || !json_is_integer(revision) || json_integer_value(revision) < 0 ||
        (published && !json_is_integer(published)) || !json_is_array(docs)) {
        rc = dagi_error_set(err, DAGI_EINVAL,
                            "config set: not an object with a revision and a docs array");
        goto out;
    }
    if (json_array_size(docs) > DAGI_DOCSET_MAX_DOCS) {
        rc = dagi_error_set(err, DAGI_ETOOBIG, "config set: more than %d documents",
                            DAGI_DOCSET_MAX_DOCS);
        goto out;
    }
    set.revision = (int64_t)json_integer_value(revision);
    set.published_at_ms = published ? (int64_t)json_integer_value(published) : 0;
    size_t i;
    json_t *o;
    json_array_foreach(docs, i, o)
    {
        if ((rc = doc_from_json(o, i, &set, err)))
            goto out;
    }
    *out = set;
    dagi_docset_init(&set);
out:
    dagi_docset_release(&set);
    json_decref(root);
    return rc;
}

/* --- from the files the configuration names --- */

/* Reads a whole file of at most DAGI_DOC_MAX_TEXT bytes; the caller frees. */
static int read_file(const char *path, char **text, size_t *len, struct dagi_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dagi_error_set(err, errno == ENOENT ? DAGI_ENOENT : DAGI_EIO, "cannot read %s: %s",
                              path, strerror(errno));
    int rc = DAGI_OK;
    size_t n = 0;
    /* one byte over the cap tells "at the cap" from "over it" */
    char *buf = dagi_xmalloc(DAGI_DOC_MAX_TEXT + 2);
    for (;;) {
        ssize_t r = read(fd, buf + n, DAGI_DOC_MAX_TEXT + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = dagi_error_set(err, DAGI_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > DAGI_DOC_MAX_TEXT) {
            rc = dagi_error_set(err, DAGI_ETOOBIG, "%s is over the cap of %d bytes", path,
                                DAGI_DOC_MAX_TEXT);
            break;
        }
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return DAGI_OK;
}

static int put_file(struct dagi_docset *s, enum dagi_doc_kind k, const char *name, const char *path,
                    struct dagi_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    rc = dagi_docset_put(s, k, name, text, len, 0, NULL, 0, err);
    free(text);
    if (rc) { /* name the file, not only the document */
        char why[sizeof(err->message)];
        snprintf(why, sizeof(why), "%s", err->message);
        dagi_error_set(err, rc, "%s: %s", path, why);
    }
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with_md(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".md") == 0;
}

/* Every regular *.md file directly in dir, in name order.  A missing dir
 * is no prompts (the default prompts_dir need not exist). */
static int put_prompts(struct dagi_docset *s, const char *dir, struct dagi_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? DAGI_OK
                               : dagi_error_set(err, DAGI_EIO, "cannot read the directory %s: %s",
                                                dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = DAGI_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ends_with_md(e->d_name))
            continue;
        if (!dagi_doc_name_valid(DAGI_DOC_PROMPTS, e->d_name)) {
            dagi_log_warn(NULL, "prompt file skipped: its name is not a document name", "dir", dir,
                          "file", e->d_name);
            continue;
        }
        if (n == DAGI_DOCSET_MAX_DOCS) {
            rc = dagi_error_set(err, DAGI_ETOOBIG, "%s holds more than %d prompt files", dir,
                                DAGI_DOCSET_MAX_DOCS);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = dagi_xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = dagi_xstrdup(e->d_name);
    }
    closedir(d);
    if (!rc && n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n && !rc; i++) {
        char *path = dagi_xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = put_file(s, DAGI_DOC_PROMPTS, names[i], path, err);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int dagi_docset_from_config(const struct dagi_config *c, struct dagi_docset *out,
                            struct dagi_error *err)
{
    const struct {
        enum dagi_doc_kind kind;
        const char *path;
    } files[] = {
        {DAGI_DOC_AGENTS, c->router.registry},     {DAGI_DOC_ROUTING, c->router.routing},
        {DAGI_DOC_POLICIES, c->registry.policies}, {DAGI_DOC_QUOTAS, c->registry.quotas},
        {DAGI_DOC_FLAGS, c->registry.flags},       {DAGI_DOC_LISTS, c->registry.lists},
    };
    struct dagi_docset s;
    dagi_docset_init(&s);
    int rc = DAGI_OK;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(files) && !rc; i++)
        if (files[i].path && *files[i].path)
            rc = put_file(&s, files[i].kind, fixed_names[files[i].kind], files[i].path, err);
    if (!rc && c->router.prompts_dir && *c->router.prompts_dir)
        rc = put_prompts(&s, c->router.prompts_dir, err);
    if (rc) {
        dagi_docset_release(&s);
        return rc;
    }
    *out = s;
    return DAGI_OK;
}
