#include "engine/lsfile.h"
#include "base/config.h"
#include "base/real.h"
#include "json/cjson_rt.h"
#include "json/jspan.h"
#include "base/log.h"
#include "engine/pyjson.h"
#include "base/sha256.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* One JSON line per exchange for LLMREPLAY_MODE=trace (llmreplay trace summarizes them). */
void lr_trace_write(const lr_capture_t *c)
{
    const char *path = lr_cfg()->trace_file;
    buf_t o;
    buf_init(&o);
    char host[160] = "";
    int port = 0;
    bool https;
    if (lr_url_hostport(c->url, host, sizeof host, &port, &https)) snprintf(host + strlen(host), sizeof host - strlen(host), ":%d", port);
    buf_printf(&o, "{\"time\":%.3f,\"pid\":%d,\"method\":", (double)time(NULL), (int)getpid());
    buf_json_strz(&o, c->method);
    buf_adds(&o, ",\"url\":");
    buf_json_strz(&o, c->url);
    buf_adds(&o, ",\"host\":");
    buf_json_strz(&o, host);
    buf_adds(&o, ",\"endpoint\":");
    const char *ep = c->op ? lr_op_info(c->op)->endpoint : "";
    buf_json_strz(&o, ep);
    buf_printf(&o, ",\"status\":%d,\"ms\":%.1f,\"ttfb_ms\":%.1f,\"bytes_out\":%zu,\"bytes_in\":%zu",
               c->status, (lr_now() - c->t_start) * 1000, c->t_first, c->req.len, c->body.len);
    buf_adds(&o, ",\"request_headers\":{");
    bool first = true;
    for (const char *p = c->req_headers.data; p && *p;) {
        const char *e = strchr(p, '\n'), *colon = strchr(p, ':');
        if (!e) e = p + strlen(p);
        if (colon && colon < e) {
            const char *v = colon + 1;
            while (v < e && *v == ' ') v++;
            const char *ve = e;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            if (!first) buf_addc(&o, ',');
            first = false;
            buf_json_str(&o, p, (size_t)(colon - p));
            buf_addc(&o, ':');
            if (lr_secret_header(p, (size_t)(colon - p))) buf_adds(&o, "\"[REDACTED]\"");
            else buf_json_str(&o, v, (size_t)(ve - v));
        }
        p = *e ? e + 1 : e;
    }
    buf_adds(&o, "},\"request\":");
    buf_t body;
    buf_init(&body);
    lr_capture_stored_body(c, &body);
    span_t rb = {body.data, body.len};
    if (c->req.len && js_valid(rb)) js_minify(rb, &o);
    else buf_json_str(&o, c->req.data ? c->req.data : "", c->req.len);
    buf_free(&body);
    span_t resp = {c->body.data ? c->body.data : "", c->body.len};
    if (lr_capture_stream_kind(c) && c->body.len) {
        span_t *ev;
        double *ms;
        int n = lr_capture_events(c, &ev, &ms);
        buf_adds(&o, ",\"events\":[");
        for (int i = 0; i < n; i++) {
            if (i) buf_addc(&o, ',');
            if (js_valid(ev[i])) js_minify(ev[i], &o);
            else buf_json_str(&o, ev[i].p, ev[i].n);
        }
        buf_adds(&o, "],\"event_ms\":[");
        for (int i = 0; i < n; i++) buf_printf(&o, "%s%.1f", i ? "," : "", ms[i]);
        buf_addc(&o, ']');
        free(ev);
        free(ms);
    } else {
        buf_adds(&o, ",\"response\":");
        if (resp.n && js_valid(resp)) js_minify(resp, &o);
        else buf_json_str(&o, resp.p, resp.n < 65536 ? resp.n : 65536);
    }
    if (c->error[0]) {
        buf_adds(&o, ",\"error\":");
        buf_json_strz(&o, c->error);
    }
    buf_adds(&o, "}\n");
    if (!o.oom && !lr_append_line(path, o.data, o.len)) lr_warn("cannot append to the trace %s: %s", path, strerror(errno));
    buf_free(&o);
}

