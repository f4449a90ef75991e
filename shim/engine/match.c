#include "engine/match.h"
#include "engine/raw.h"
#include "engine/testid.h"
#include "base/config.h"
#include "base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* group += sep name[:port], cut at gcap (no printf: every match runs this) */
static void group_add(char *group, size_t gcap, const char *sep, const char *name, int port)
{
    size_t l = strlen(group);
    for (const char *p = sep; *p && l + 1 < gcap; p++) group[l++] = *p;
    for (const char *p = name; *p && l + 1 < gcap; p++) group[l++] = *p;
    if (port >= 0 && l + 1 < gcap) {
        char d[12];
        int k = 0;
        do { d[k++] = (char)('0' + port % 10); port /= 10; } while (port && k < 11);
        group[l++] = ':';
        while (k && l + 1 < gcap) group[l++] = d[--k];
    }
    group[l] = 0;
}

/* Among equal candidates, prefer the caller's test id, then the same endpoint (chat and
 * completions, which match as one, each get their own answer), then the host: a recording
 * made against the host the client talks to is the better answer, but any host may answer.
 * group names the subset chosen, so each subset keeps its own serving order. */
static int preferred(lr_rec_t *const *v, int n, const lr_req_t *rq, lr_rec_t **out, char *group, size_t gcap)
{
    char tidbuf[1024];
    const char *tid = lr_testid(tidbuf, sizeof tidbuf);
    int m = 0;
    group[0] = 0;
    if (tid) {
        for (int i = 0; i < n; i++)
            if (v[i]->test_id && !strcmp(v[i]->test_id, tid)) out[m++] = v[i];
        if (m) { v = out; n = m; group_add(group, gcap, "", tid, -1); }
    }
    m = 0;
    for (int i = 0; i < n; i++)
        if (v[i]->op == rq->op) out[m++] = v[i];
    if (m && m < n) {
        v = out, n = m;
        group_add(group, gcap, "#", lr_op_info(rq->op)->name, -1);
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (rq->host[0] && !strcmp(v[i]->host, rq->host) && v[i]->port == rq->port) out[k++] = v[i];
    if (k) {
        group_add(group, gcap, "@", rq->host, rq->port);
        return k;
    }
    if (v != out) memcpy(out, v, sizeof *v * (size_t)n);
    return n;
}

const lr_rec_t *lr_match(lr_store_t *s, const lr_req_t *rq, bool advance)
{
    if (!s || rq->body_invalid) return NULL;
    uint64_t h1 = rq->h1, h2 = rq->h2;
    if (!rq->keyed) lr_req_key(rq, lr_store_ignore(s), &h1, &h2);
    int ne;
    lr_rec_t *const *recs = lr_store_find(s, h1, h2, &ne);
    if (!ne) return NULL;
    lr_rec_t *stackv[16], **cand = ne <= 16 ? stackv : malloc(sizeof *cand * (size_t)ne);
    if (!cand) return recs[0];
    char group[300];
    int n = preferred(recs, ne, rq, cand, group, sizeof group);
    /* Several recordings of one request answer in order; the last then repeats. */
    unsigned i = lr_store_count(s, h1 ^ lr_hash64(group, strlen(group), 1), advance);
    const lr_rec_t *r = cand[i < (unsigned)n ? i : (unsigned)n - 1];
    if (cand != stackv) free(cand);
    return r;
}

void lr_find_nearest(lr_store_t *s, const lr_req_t *rq, lr_nearest_t *out)
{
    memset(out, 0, sizeof *out);
    out->diff.count = -1;
    if (!s) return;
    lr_op_t cls = lr_op_class(rq->op);
    const char *model = lr_body_model(rq->body);
    /* Two passes: recordings of the same model first, then the rest, with a cap so a miss
     * against a huge set stays cheap (each candidate's request is read from its file). */
    int budget = 1000, nall;
    lr_rec_t **all = lr_store_all(s, &nall);
    for (int pass = 0; pass < 2 && budget > 0; pass++) {
        for (int i = 0; i < nall && budget > 0; i++) {
            lr_rec_t *r = all[i];
            if (lr_op_class(r->op) != cls) continue;
            bool same_model = !strcmp(r->model, model);
            if (pass == 0) out->candidates++;
            if (same_model != (pass == 0)) continue;
            budget--;
            cJSON *b = lr_rec_request_body(r);
            lr_diff_t d;
            lr_diff(rq->body, b, lr_store_ignore(s), &d);
            if (strcasecmp(r->method, rq->method ? rq->method : "POST") && !lr_op_info(rq->op)->listing) d.count++;
            if (b) J.Delete(b);
            if (out->diff.count < 0 || d.count < out->diff.count) {
                out->diff = d;
                out->nearest = r;
            }
        }
        if (out->nearest) break; /* same-model candidates are the useful comparison */
    }
}

void lr_miss_message(const lr_req_t *rq, const lr_nearest_t *n, buf_t *out)
{
    const char *model = lr_body_model(rq->body);
    size_t plen;
    const char *path = lr_url_path(rq->url, &plen);
    buf_printf(out, "llmreplay: no recording matches %s %.*s (operation %s, model \"%s\")",
               rq->method ? rq->method : "POST", (int)plen, path, lr_op_info(rq->op)->endpoint, model);
    if (rq->body_invalid) {
        buf_adds(out, ": the request body is not valid JSON");
    } else if (n->nearest) {
        buf_printf(out, "; nearest recording: %s", n->nearest->path);
        if (n->diff.count > 0)
            buf_printf(out, ", first difference at %s: request has %s, recording has %s (%d field%s differ)",
                       n->diff.path, n->diff.mine, n->diff.theirs, n->diff.count, n->diff.count == 1 ? "" : "s");
        else if (n->diff.count == 0 && strcasecmp(n->nearest->method, rq->method ? rq->method : "POST"))
            buf_printf(out, ", recorded with method %s", n->nearest->method);
    } else {
        buf_printf(out, "; there is no recording of %s at all in LLMREPLAY_DIR", lr_op_info(rq->op)->endpoint);
    }
    buf_adds(out, ". To fix it, add a recording of this request to LLMREPLAY_DIR (record it against the real "
                  "API with LLMREPLAY_MODE=record-if-missing), or name fields that may differ in LLMREPLAY_IGNORE");
}
