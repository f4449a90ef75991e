/* Record mode (engine/capture.c, engine/lsfile.c, engine/raw.c): a captured exchange "CONTENT-TYPE\0RESPONSE\0REQUEST-BODY",
 * the response arriving in pieces, is split into events and written as a recording, which must
 * then load and render like any other. The first byte picks the URL (LLM endpoints, Gemini, and
 * one no operation answers: a raw HTTP recording) and the status. LR_FUZZ_NORMALIZE=1 runs it
 * with LLMREPLAY_NORMALIZE=1 (a setting, read once: tests/test_fuzz.py runs both). */
#include "engine/lsfile.h"
#include "engine/record.h"
#include "engine/render.h"
#include "fuzz.h"
#include <dirent.h>

static const char *const urls[] = {
    "https://api.openai.com/v1/chat/completions", "http://localhost:11434/api/chat",
    "https://api.openai.com/v1/models", "https://api.anthropic.com/v1/messages",
    "https://api.openai.com/v1/responses", "http://localhost:11434/api/generate",
    "https://api.openai.com/v1/embeddings", "http://localhost:11434/api/tags",
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
    "https://api.openai.com/v1/files?purpose=batch", "http://localhost:11434/api/version"};
#define NURLS (sizeof urls / sizeof *urls)

static void load_written(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    lr_ignore_t ig = {0};
    while (dp && (e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char path[512], why[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        lr_rec_t *r = lr_rec_load(path, &ig, why, sizeof why);
        if (r) {
            lr_response_t *resp = lr_render_recording(r);
            if (resp) { resp->owned = true; lr_response_free(resp); }
            lr_rec_free(r);
        }
        unlink(path);
    }
    if (dp) closedir(dp);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static bool init;
    if (!init) {
        setenv("LLMREPLAY_MODE", "record", 1);
        setenv("LLMREPLAY_RECORD_DIR", fz_scratch(), 1);
        const char *nz = getenv("LR_FUZZ_NORMALIZE");
        if (nz && *nz == '1') setenv("LLMREPLAY_NORMALIZE", "1", 1);
        else unsetenv("LLMREPLAY_NORMALIZE");
        fz_quiet();
        init = true;
    }
    if (!n) return 0;
    uint8_t sel = d[0];
    d++, n--;
    size_t tl, rl, ql;
    const uint8_t *t = fz_field(d, n, 0, &tl), *resp = fz_field(d, n, 1, &rl), *req = fz_field(d, n, 2, &ql);
    lr_capture_t *c = lr_capture_new("POST", urls[(sel & 15) % NURLS]);
    const char *status = sel & 0x40 ? "HTTP/1.1 429 Too Many Requests\r\n" : "HTTP/1.1 200 OK\r\n";
    lr_capture_header(c, status, strlen(status));
    char ct[300];
    int cl = snprintf(ct, sizeof ct, "Content-Type: %.*s\r\n", (int)(tl < 200 ? tl : 200), (const char *)t);
    lr_capture_header(c, ct, (size_t)cl);
    buf_add(&c->req, req, ql);
    /* the response in up to four pieces, cut where the input says */
    size_t cut[3] = {rl / 4, rl / 2 + (sel & 3), rl - (sel >> 4 & 3)}, at = 0;
    for (int i = 0; i < 3; i++) {
        size_t to = cut[i] > rl ? rl : cut[i] < at ? at : cut[i];
        lr_capture_data(c, resp + at, to - at);
        at = to;
    }
    lr_capture_data(c, resp + at, rl - at);
    span_t *ev;
    double *ms;
    int k = lr_capture_events(c, &ev, &ms);
    for (int i = 0; i < k; i++)
        if (ev[i].p < c->body.data || ev[i].p + ev[i].n > c->body.data + c->body.len) abort();
    free(ev);
    free(ms);
    lr_capture_finish(c);
    load_written(fz_scratch());
    return 0;
}
