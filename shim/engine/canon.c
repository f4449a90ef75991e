#include "engine/canon.h"
#include "base/config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lr_ignore_parse(lr_ignore_t *ig, const char *spec)
{
    memset(ig, 0, sizeof *ig);
    if (!spec) return;
    const char *tok;
    size_t l;
    for (const char *p = spec; lr_list_next(&p, &tok, &l);) {
        char **np = realloc(ig->paths, sizeof(char *) * (size_t)(ig->n + 1));
        if (!np) break;
        ig->paths = np;
        ig->paths[ig->n++] = lr_strndup(tok, l);
    }
}

const char *lr_ignore_env(void)
{
    static __thread char buf[2048];
    const char *a = lr_cfg()->ignore, *b = lr_cfg()->redact;
    if (!b) return a;
    snprintf(buf, sizeof buf, "%s%s%s", a ? a : "", a ? "," : "", b);
    return buf;
}

void lr_ignore_free(lr_ignore_t *ig)
{
    for (int i = 0; i < ig->n; i++) free(ig->paths[i]);
    free(ig->paths);
    memset(ig, 0, sizeof *ig);
}

static bool ignored(const lr_ignore_t *ig, const char *path)
{
    for (int i = 0; ig && i < ig->n; i++)
        if (ig->paths[i] && !strcmp(ig->paths[i], path)) return true;
    return false;
}

static void fmt_num(double v, buf_t *out)
{
    /* round(v, 5) then the shortest spelling: "%.5f" rounds the exact binary value like
     * Python's round(); trailing zeros go so 1, 1.0 and 1.00000 are one number. */
    char tmp[400];
    int n = snprintf(tmp, sizeof tmp, "%.5f", v);
    if (n <= 0 || (size_t)n >= sizeof tmp) { buf_printf(out, "%.17g", v); return; }
    while (n > 0 && tmp[n - 1] == '0') n--;
    if (n > 0 && tmp[n - 1] == '.') n--;
    tmp[n] = 0;
    if (!strcmp(tmp, "-0")) { buf_addc(out, '0'); return; }
    buf_add(out, tmp, (size_t)n);
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }

/* llama-stack rounds decimal literals with 4+ fraction digits inside strings
 * (pattern -?\d+\.\d{4,}) to 5 decimals before hashing; do the same. */
char *lr_round_decimals(const char *s, size_t n, size_t *outn)
{
    buf_t t;
    buf_init(&t);
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        if (isdig(s[i]) || (s[i] == '-' && i + 1 < n && isdig(s[i + 1]))) {
            size_t j = i + (s[i] == '-');
            while (j < n && isdig(s[j])) j++;
            if (j < n && s[j] == '.') {
                size_t k = j + 1;
                while (k < n && isdig(s[k])) k++;
                if (k - j - 1 >= 4) {
                    char num[400];
                    snprintf(num, sizeof num, "%.*s", (int)(k - st < sizeof num - 1 ? k - st : sizeof num - 1), s + st);
                    buf_printf(&t, "%.5f", strtod(num, NULL));
                    i = k;
                    continue;
                }
            }
            /* no match here: emit the digit run (a match cannot start inside it) */
            size_t stop = j > st + (s[st] == '-') ? j : st + 1;
            buf_add(&t, s + st, stop - st);
            i = stop;
            continue;
        }
        buf_addc(&t, s[i++]);
    }
    return buf_steal(&t, outn);
}

static void fmt_str(const char *s, buf_t *out)
{
    size_t n = strlen(s), rn;
    if (!memchr(s, '.', n)) { buf_json_str(out, s, n); return; }
    char *r = lr_round_decimals(s, n, &rn);
    buf_json_str(out, r ? r : s, r ? rn : n);
    free(r);
}

typedef struct { const cJSON *item; int pos; } kid_t;

static int cmp_kids(const void *a, const void *b)
{
    const kid_t *x = a, *y = b;
    int c = strcmp(x->item->string ? x->item->string : "", y->item->string ? y->item->string : "");
    return c ? c : x->pos - y->pos; /* duplicate keys keep document order */
}

/* Children of an object, sorted by key; a duplicated key keeps its last value, as Python's
 * json does. */
static int sorted_children(const cJSON *j, const cJSON ***out)
{
    int n = 0;
    for (const cJSON *c = j->child; c; c = c->next) n++;
    kid_t *k = malloc(sizeof *k * (size_t)(n ? n : 1));
    const cJSON **v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!k || !v) { free(k); free(v); *out = NULL; return 0; }
    n = 0;
    for (const cJSON *c = j->child; c; c = c->next, n++) k[n] = (kid_t){c, n};
    qsort(k, (size_t)n, sizeof *k, cmp_kids);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && !strcmp(v[m - 1]->string ? v[m - 1]->string : "", k[i].item->string ? k[i].item->string : ""))
            v[m - 1] = k[i].item;
        else
            v[m++] = k[i].item;
    }
    free(k);
    *out = v;
    return m;
}

static void path_push(char *path, size_t cap, size_t *len, const char *key)
{
    size_t k = strlen(key), l = *len;
    if (l + k + 2 >= cap) return;
    if (l) path[l++] = '.';
    memcpy(path + l, key, k + 1);
    *len = l + k;
}

static void canon(const cJSON *j, const lr_ignore_t *ig, buf_t *out, char *path, size_t plen, int depth)
{
    if (depth > 400) { buf_adds(out, "null"); return; }
    switch (j->type & 0xFF) {
    case cJSON_NULL: buf_adds(out, "null"); return;
    case cJSON_True: buf_adds(out, "true"); return;
    case cJSON_False: buf_adds(out, "false"); return;
    case cJSON_Number: fmt_num(j->valuedouble, out); return;
    case cJSON_String: case cJSON_Raw: fmt_str(j->valuestring ? j->valuestring : "", out); return;
    case cJSON_Array:
        buf_addc(out, '[');
        for (const cJSON *c = j->child; c; c = c->next) {
            canon(c, ig, out, path, plen, depth + 1);
            if (c->next) buf_addc(out, ',');
        }
        buf_addc(out, ']');
        return;
    case cJSON_Object: {
        const cJSON **v;
        int n = sorted_children(j, &v);
        bool first = true;
        buf_addc(out, '{');
        for (int i = 0; i < n; i++) {
            size_t l = plen;
            path_push(path, 512, &l, v[i]->string ? v[i]->string : "");
            if (ig && ig->n && ignored(ig, path)) { path[plen] = 0; continue; }
            if (!first) buf_addc(out, ',');
            first = false;
            fmt_str(v[i]->string ? v[i]->string : "", out);
            buf_addc(out, ':');
            canon(v[i], ig, out, path, l, depth + 1);
            path[plen] = 0;
        }
        buf_addc(out, '}');
        free(v);
        return;
    }
    default: buf_adds(out, "null");
    }
}

void lr_canon(const cJSON *j, const lr_ignore_t *ig, buf_t *out)
{
    char path[512] = "";
    if (j) canon(j, ig, out, path, 0, 0);
}

uint64_t lr_canon_hash(const cJSON *j, const lr_ignore_t *ig)
{
    if (!j) return 0;
    buf_t b;
    buf_init(&b);
    lr_canon(j, ig, &b);
    uint64_t h = b.oom ? 1 : lr_hash64(b.data, b.len, 0);
    buf_free(&b);
    return h ? h : 1;
}

static void show(const cJSON *j, const lr_ignore_t *ig, char *dst, size_t cap)
{
    if (!j) { snprintf(dst, cap, "(absent)"); return; }
    buf_t b;
    buf_init(&b);
    lr_canon(j, ig, &b);
    if (b.len >= cap) snprintf(dst, cap, "%.*s…", (int)(cap - 5), b.data);
    else snprintf(dst, cap, "%s", b.data ? b.data : "");
    buf_free(&b);
}

static bool same(const cJSON *a, const cJSON *b, const lr_ignore_t *ig)
{
    buf_t x, y;
    buf_init(&x);
    buf_init(&y);
    lr_canon(a, ig, &x);
    lr_canon(b, ig, &y);
    bool r = x.len == y.len && (!x.len || !memcmp(x.data, y.data, x.len));
    buf_free(&x);
    buf_free(&y);
    return r;
}

static void note(lr_diff_t *d, const char *path, const cJSON *a, const cJSON *b, const lr_ignore_t *ig)
{
    if (d->count++) return;
    snprintf(d->path, sizeof d->path, "%s", *path ? path : "(body)");
    show(a, ig, d->mine, sizeof d->mine);
    show(b, ig, d->theirs, sizeof d->theirs);
}

static void diff(const cJSON *a, const cJSON *b, const lr_ignore_t *ig, lr_diff_t *d, char *path, size_t plen,
                 const char *cpath, int depth)
{
    int ta = a ? a->type & 0xFF : -1, tb = b ? b->type & 0xFF : -1;
    if (depth > 100 || !a || !b || ta != tb || (ta != cJSON_Object && ta != cJSON_Array)) {
        if (!a || !b || !same(a, b, ig)) note(d, path, a, b, ig);
        return;
    }
    if (ta == cJSON_Array) {
        const cJSON *x = a->child, *y = b->child;
        for (int i = 0; x || y; i++) {
            size_t l = strlen(path);
            snprintf(path + l, 512 - l, "[%d]", i);
            diff(x, y, ig, d, path, plen, cpath, depth + 1);
            path[l] = 0;
            x = x ? x->next : NULL;
            y = y ? y->next : NULL;
        }
        return;
    }
    const cJSON **va, **vb;
    int na = sorted_children(a, &va), nb = sorted_children(b, &vb);
    int i = 0, k = 0;
    char cp[512];
    while (i < na || k < nb) {
        int c = i >= na ? 1 : k >= nb ? -1 : strcmp(va[i]->string, vb[k]->string);
        const cJSON *x = c <= 0 ? va[i] : NULL, *y = c >= 0 ? vb[k] : NULL;
        const char *key = x ? x->string : y->string;
        snprintf(cp, sizeof cp, "%s%s%s", cpath, *cpath ? "." : "", key);
        if (!(ig && ig->n && ignored(ig, cp))) {
            size_t l = strlen(path);
            snprintf(path + l, 512 - l, "%s%s", l ? "." : "", key);
            diff(x, y, ig, d, path, plen, cp, depth + 1);
            path[l] = 0;
        }
        if (c <= 0) i++;
        if (c >= 0) k++;
    }
    free(va);
    free(vb);
}

void lr_diff(const cJSON *req, const cJSON *rec, const lr_ignore_t *ig, lr_diff_t *d)
{
    memset(d, 0, sizeof *d);
    char path[512] = "";
    diff(req, rec, ig, d, path, 0, "", 0);
}
