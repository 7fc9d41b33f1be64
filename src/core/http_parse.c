#include "http_parse.h"

#include <string.h>

/* Character classes, one table so the hot loops do a single lookup. */
enum {
    C_TOKEN = 1, /* tchar (RFC 9110 §5.6.2) */
    C_VCHAR = 2, /* field-vchar or obs-text, plus SP and HTAB: allowed in values */
    C_TARGET = 4 /* visible ASCII allowed in a request-target */
};

static unsigned char char_class[256];

static void init_classes(void)
{
    static const char tspecials[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        unsigned char cls = 0;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c && strchr(tspecials, c)))
            cls |= C_TOKEN;
        if ((c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t')
            cls |= C_VCHAR;
        if (c >= 0x21 && c <= 0x7e)
            cls |= C_TARGET;
        char_class[c] = cls;
    }
}

/* Filled by a constructor before main, so the hot path never checks and no
 * thread can see it half-built. */
__attribute__((constructor)) static void http_parse_init(void)
{
    init_classes();
}

static inline bool is_token(unsigned char c)
{
    return char_class[c] & C_TOKEN;
}

static inline bool is_value(unsigned char c)
{
    return char_class[c] & C_VCHAR;
}

/* Reads a line end at p: "\r\n" or "\n".  Returns the bytes it spans, 0 when
 * p does not start a line end, or -1 for need-more / -2 for a bare CR. */
static int line_end(const unsigned char *p, const unsigned char *end)
{
    if (p >= end)
        return -1;
    if (*p == '\n')
        return 1;
    if (*p != '\r')
        return 0;
    if (p + 1 >= end)
        return -1;
    return p[1] == '\n' ? 2 : -2;
}

/* Parses header fields up to and including the empty line that ends the
 * section, advancing *pp past it; shared by requests and responses so both
 * refuse the same shapes.  Fills hs[0..*count) as it goes (the callers copy
 * them out only on OK). */
static int parse_fields(const unsigned char **pp, const unsigned char *end,
                        struct dagi_http_header *hs, size_t *count)
{
    const unsigned char *p = *pp;
    size_t header_count = 0;
    for (;;) {
        int n = line_end(p, end);
        if (n == -1)
            return DAGI_ENEEDMORE;
        if (n == -2)
            return DAGI_EPARSE;
        if (n > 0) {
            p += n;
            break;
        }
        /* A line starting with whitespace is obs-fold (or whitespace before
         * the first header): both are smuggling vectors, RFC 9112 §5.2. */
        if (*p == ' ' || *p == '\t')
            return DAGI_EPARSE;
        if (header_count == DAGI_HTTP_MAX_HEADERS)
            return DAGI_ETOOBIG;
        struct dagi_http_header *hd = &hs[header_count];
        hd->name = (const char *)p;
        while (p < end && is_token(*p))
            p++;
        if (p == end)
            return DAGI_ENEEDMORE;
        /* No whitespace between name and colon (RFC 9112 §5.1): a proxy
         * that strips it and one that does not see different headers. */
        if (*p != ':' || p == (const unsigned char *)hd->name)
            return DAGI_EPARSE;
        hd->name_len = (size_t)(p - (const unsigned char *)hd->name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        hd->value = (const char *)p;
        while (p < end && is_value(*p))
            p++;
        if (p == end)
            return DAGI_ENEEDMORE;
        const unsigned char *value_end = p;
        n = line_end(p, end);
        if (n == -1)
            return DAGI_ENEEDMORE;
        if (n <= 0) /* NUL, bare CR or another control byte in the value */
            return DAGI_EPARSE;
        p += n;
        while (value_end > (const unsigned char *)hd->value &&
               (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        hd->value_len = (size_t)(value_end - (const unsigned char *)hd->value);
        header_count++;
    }
    *pp = p;
    *count = header_count;
    return DAGI_OK;
}

/* Reads "HTTP/1.<digit>" at *pp; the version is the same closed set for
 * requests and responses (HTTP/2 is never spoken over this framing). */
static int parse_version(const unsigned char **pp, const unsigned char *end, int *minor)
{
    static const char version[] = "HTTP/1.";
    const unsigned char *p = *pp;
    for (size_t i = 0; i < sizeof(version) - 1; i++, p++) {
        if (p == end)
            return DAGI_ENEEDMORE;
        if (*p != (unsigned char)version[i])
            return DAGI_EPARSE;
    }
    if (p == end)
        return DAGI_ENEEDMORE;
    if (*p < '0' || *p > '9')
        return DAGI_EPARSE;
    *minor = *p - '0';
    *pp = p + 1;
    return DAGI_OK;
}

int dagi_http_parse_request(const char *buf, size_t len, struct dagi_http_request_head *out,
                            size_t *consumed)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    struct dagi_http_request_head h;
    h.header_count = 0;

    /* RFC 9112 §2.2: ignore empty lines before the request line (left over
     * from a previous body's extra CRLF in old clients). */
    for (;;) {
        int n = line_end(p, end);
        if (n == -1)
            return DAGI_ENEEDMORE;
        if (n == -2)
            return DAGI_EPARSE;
        if (n == 0)
            break;
        p += n;
    }

    h.method = (const char *)p;
    while (p < end && is_token(*p))
        p++;
    if (p == end)
        return DAGI_ENEEDMORE;
    if (*p != ' ' || p == (const unsigned char *)h.method)
        return DAGI_EPARSE;
    h.method_len = (size_t)(p - (const unsigned char *)h.method);
    p++;

    h.target = (const char *)p;
    while (p < end && (char_class[*p] & C_TARGET))
        p++;
    if (p == end)
        return DAGI_ENEEDMORE;
    if (*p != ' ' || p == (const unsigned char *)h.target)
        return DAGI_EPARSE;
    h.target_len = (size_t)(p - (const unsigned char *)h.target);
    p++;

    int rc = parse_version(&p, end, &h.minor_version);
    if (rc)
        return rc;
    int n = line_end(p, end);
    if (n == -1)
        return DAGI_ENEEDMORE;
    if (n <= 0)
        return DAGI_EPARSE;
    p += n;

    rc = parse_fields(&p, end, h.headers, &h.header_count);
    if (rc)
        return rc;

    out->method = h.method;
    out->method_len = h.method_len;
    out->target = h.target;
    out->target_len = h.target_len;
    out->minor_version = h.minor_version;
    out->header_count = h.header_count;
    memcpy(out->headers, h.headers, h.header_count * sizeof(h.headers[0]));
    *consumed = (size_t)(p - (const unsigned char *)buf);
    return DAGI_OK;
}

int dagi_http_parse_response(const char *buf, size_t len, struct dagi_http_response_head *out,
                             size_t *consumed)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    struct dagi_http_response_head h;
    h.header_count = 0;

    /* No empty lines are skipped here: RFC 9112 §2.2 allows that to servers
     * reading requests, and bytes before a status line mean the previous
     * response was framed wrongly. */
    int rc = parse_version(&p, end, &h.minor_version);
    if (rc)
        return rc;
    if (p == end)
        return DAGI_ENEEDMORE;
    if (*p != ' ')
        return DAGI_EPARSE;
    p++;
    h.status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == end)
            return DAGI_ENEEDMORE;
        if (*p < '0' || *p > '9')
            return DAGI_EPARSE;
        h.status = h.status * 10 + (*p - '0');
    }
    if (h.status < 100)
        return DAGI_EPARSE;
    /* The SP before the reason is required by the grammar, but servers
     * that send no reason often drop it too ("HTTP/1.1 200\r\n"); a line end
     * right after the code is unambiguous, so it is accepted. */
    if (p == end)
        return DAGI_ENEEDMORE;
    if (*p == ' ')
        p++;
    else if (*p != '\r' && *p != '\n')
        return DAGI_EPARSE;
    h.reason = (const char *)p;
    while (p < end && is_value(*p))
        p++;
    if (p == end)
        return DAGI_ENEEDMORE;
    h.reason_len = (size_t)(p - (const unsigned char *)h.reason);
    int n = line_end(p, end);
    if (n == -1)
        return DAGI_ENEEDMORE;
    if (n <= 0) /* a control byte or bare CR in the reason */
        return DAGI_EPARSE;
    p += n;

    rc = parse_fields(&p, end, h.headers, &h.header_count);
    if (rc)
        return rc;

    out->minor_version = h.minor_version;
    out->status = h.status;
    out->reason = h.reason;
    out->reason_len = h.reason_len;
    out->header_count = h.header_count;
    memcpy(out->headers, h.headers, h.header_count * sizeof(h.headers[0]));
    *consumed = (size_t)(p - (const unsigned char *)buf);
    return DAGI_OK;
}

static bool name_equals(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static const struct dagi_http_header *find_field(const struct dagi_http_header *hs, size_t n,
                                                 const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (name_equals(hs[i].name, hs[i].name_len, name))
            return &hs[i];
    return NULL;
}

const struct dagi_http_header *dagi_http_head_find(const struct dagi_http_request_head *h,
                                                   const char *name)
{
    return find_field(h->headers, h->header_count, name);
}

const struct dagi_http_header *dagi_http_response_find(const struct dagi_http_response_head *h,
                                                       const char *name)
{
    return find_field(h->headers, h->header_count, name);
}

/* Walks a comma-separated list; for each element calls back with the
 * element trimmed of OWS and of any ";parameters".  Empty elements are
 * skipped, as RFC 9110 §5.6.1 asks of recipients. */
static const char *next_element(const char *p, const char *end, size_t *elen, const char **after)
{
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            return NULL;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        *after = p;
        const char *e = start;
        while (e < p && *e != ';')
            e++;
        while (e > start && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > start) {
            *elen = (size_t)(e - start);
            return start;
        }
    }
}

bool dagi_http_list_has_token(const char *value, size_t len, const char *token)
{
    const char *p = value, *end = value + len, *after;
    size_t elen;
    const char *el;
    while ((el = next_element(p, end, &elen, &after))) {
        if (name_equals(el, elen, token))
            return true;
        p = after;
    }
    return false;
}

int dagi_http_parse_content_length(const char *value, size_t len, uint64_t *out)
{
    if (len == 0 || len > 18) /* 18 digits stay below 2^63 */
        return DAGI_EPARSE;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return DAGI_EPARSE;
        v = v * 10 + (uint64_t)(value[i] - '0');
    }
    *out = v;
    return DAGI_OK;
}

/* The framing rules requests and responses share (RFC 9112 §6): *have_cl
 * tells a response without Content-Length (read until close) from one with
 * "Content-Length: 0". */
static int framing_of(const struct dagi_http_header *hs, size_t header_count, int minor_version,
                      struct dagi_http_framing *out, bool *have_cl_out)
{
    bool have_cl = false, have_te = false, chunked_last = false, other_coding = false;
    uint64_t cl = 0;
    for (size_t i = 0; i < header_count; i++) {
        const struct dagi_http_header *hd = &hs[i];
        if (name_equals(hd->name, hd->name_len, "content-length")) {
            uint64_t v;
            if (dagi_http_parse_content_length(hd->value, hd->value_len, &v))
                return DAGI_EPARSE;
            if (have_cl && v != cl)
                return DAGI_EPARSE;
            have_cl = true;
            cl = v;
        } else if (name_equals(hd->name, hd->name_len, "transfer-encoding")) {
            /* Codings accumulate across repeated headers, in order. */
            const char *p = hd->value, *end = hd->value + hd->value_len, *after, *el;
            size_t elen;
            while ((el = next_element(p, end, &elen, &after))) {
                if (chunked_last) /* chunked must be applied once, last */
                    return DAGI_EPARSE;
                have_te = true;
                if (name_equals(el, elen, "chunked"))
                    chunked_last = true;
                else
                    other_coding = true;
                p = after;
            }
            if (!have_te) /* "Transfer-Encoding:" with nothing in it */
                return DAGI_EPARSE;
        }
    }
    if (have_te) {
        /* RFC 9112 §6.1: TE in HTTP/1.0 means faulty framing; §6.3: CL and
         * TE together is the classic smuggling setup - reject, never pick. */
        if (minor_version == 0 || have_cl || !chunked_last)
            return DAGI_EPARSE;
        if (other_coding)
            return DAGI_EUNAVAIL;
        out->kind = DAGI_HTTP_BODY_CHUNKED;
        out->length = 0;
        *have_cl_out = false;
        return DAGI_OK;
    }
    out->kind = have_cl && cl > 0 ? DAGI_HTTP_BODY_LENGTH : DAGI_HTTP_BODY_NONE;
    out->length = have_cl ? cl : 0;
    *have_cl_out = have_cl;
    return DAGI_OK;
}

int dagi_http_body_framing(const struct dagi_http_request_head *h, struct dagi_http_framing *out)
{
    bool have_cl;
    return framing_of(h->headers, h->header_count, h->minor_version, out, &have_cl);
}

int dagi_http_response_framing(const struct dagi_http_response_head *h, bool head_request,
                               struct dagi_http_framing *out)
{
    struct dagi_http_framing f;
    bool have_cl;
    int rc = framing_of(h->headers, h->header_count, h->minor_version, &f, &have_cl);
    if (rc)
        return rc;
    /* RFC 9112 §6.3 items 1-2: these never have a body, whatever the
     * headers say (a HEAD answer's Content-Length is the GET's).  Checked
     * after the headers so faulty framing is refused either way. */
    if (head_request || h->status < 200 || h->status == 204 || h->status == 304) {
        out->kind = DAGI_HTTP_BODY_NONE;
        out->length = 0;
        return DAGI_OK;
    }
    /* item 8: neither header - the body runs until the server closes */
    if (f.kind == DAGI_HTTP_BODY_NONE && !have_cl)
        f.kind = DAGI_HTTP_BODY_UNTIL_CLOSE;
    *out = f;
    return DAGI_OK;
}

/* --- chunked --- */

enum {
    CH_SIZE,        /* first hex digit of a chunk size */
    CH_SIZE_MORE,   /* more hex digits, ';', BWS or CR */
    CH_SIZE_WS,     /* BWS between the size and ';' */
    CH_EXT,         /* chunk extension up to CR */
    CH_SIZE_LF,     /* LF after the size line */
    CH_DATA,        /* chunk data */
    CH_DATA_CR,     /* CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER,     /* start of a trailer line, or the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,      /* LF of the final empty line */
    CH_DONE,
};

void dagi_http_chunked_init(struct dagi_http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

bool dagi_http_chunked_done(const struct dagi_http_chunked *c)
{
    return c->state == CH_DONE;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dagi_http_chunked_feed(struct dagi_http_chunked *c, const char *in, size_t len,
                           size_t *consumed, const char **data, size_t *data_len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    int rc = DAGI_ENEEDMORE;
    *data = NULL;
    *data_len = 0;

    while (i < len && c->state != CH_DONE) {
        unsigned char ch = p[i];
        if (c->state == CH_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            *data = in + i;
            *data_len = n;
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            goto out; /* hand the span back before going on */
        }
        i++;
        if (c->state <= CH_SIZE_LF && ++c->line_len > DAGI_HTTP_CHUNK_LINE_MAX)
            goto bad;
        if (c->state >= CH_TRAILER && ++c->trailer_len > DAGI_HTTP_TRAILER_MAX)
            goto bad;
        switch (c->state) {
        case CH_SIZE:
        case CH_SIZE_MORE: {
            int v = hex_value(ch);
            if (v >= 0) {
                /* 15 hex digits keep the size below 2^60: no overflow, and
                 * far beyond any body cap. */
                if (++c->digits > 15)
                    goto bad;
                c->remaining = c->remaining << 4 | (uint64_t)v;
                c->state = CH_SIZE_MORE;
            } else if (c->state == CH_SIZE) {
                goto bad;
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = CH_SIZE_WS;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                goto bad; /* a bare LF too: chunk lines need CRLF */
            }
            break;
        }
        case CH_SIZE_WS:
            if (ch == ';')
                c->state = CH_EXT;
            else if (ch != ' ' && ch != '\t')
                goto bad;
            break;
        case CH_EXT:
            /* Extensions are ignored, but a CTL or bare LF inside one is
             * where lenient parsers disagree about where the line ends. */
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (!is_value(ch))
                goto bad;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->line_len = 0;
            c->digits = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                c->state = CH_END_LF;
            else if (is_token(ch))
                c->state = CH_TRAILER_NAME;
            else
                goto bad;
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!is_token(ch))
                goto bad;
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!is_value(ch))
                goto bad;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_TRAILER;
            break;
        case CH_END_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_DONE;
            break;
        default:
            goto bad;
        }
    }
out:
    if (c->state == CH_DONE)
        rc = DAGI_OK;
    *consumed = i;
    return rc;
bad:
    *consumed = i;
    *data = NULL;
    *data_len = 0;
    return DAGI_EPARSE;
}

/* --- percent-decoding and queries --- */

static int decode(const char *in, size_t len, char *out, size_t *out_len, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return DAGI_EPARSE;
            int hi = hex_value((unsigned char)in[i + 1]);
            int lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return DAGI_EPARSE;
            ch = (char)(hi << 4 | lo);
            if (ch == '\0')
                return DAGI_EPARSE;
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        } else if (ch == '\0') {
            return DAGI_EPARSE;
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    *out_len = o;
    return DAGI_OK;
}

int dagi_http_percent_decode(const char *in, size_t len, char *out, size_t *out_len)
{
    return decode(in, len, out, out_len, false);
}

int dagi_http_form_decode(const char *in, size_t len, char *out, size_t *out_len)
{
    return decode(in, len, out, out_len, true);
}

int dagi_http_query_get(const char *query, size_t len, const char *name, char *out,
                        size_t out_cap, size_t *out_len)
{
    size_t name_len = strlen(name);
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *key_end = eq ? eq : pe;
        size_t key_len = (size_t)(key_end - p);
        /* Compare the decoded key; keys longer than this are never ours. */
        char key[256];
        size_t dlen;
        if (key_len < sizeof(key) && decode(p, key_len, key, &dlen, true) == DAGI_OK &&
            dlen == name_len && memcmp(key, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : pe;
            size_t vlen = (size_t)(pe - v);
            if (out_cap < vlen + 1)
                return DAGI_ETOOBIG;
            return decode(v, vlen, out, out_len, true);
        }
        p = pe + (amp ? 1 : 0);
    }
    return DAGI_ENOENT;
}
