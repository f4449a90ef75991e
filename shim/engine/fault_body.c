/* What OpenAI, Anthropic and Ollama send for an error status or a failure mid-stream, with
 * the headers their SDKs look at (retry-after, x-ratelimit-*, anthropic-ratelimit-*). */
#include "engine/fault_body.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int status; const char *type, *code, *message; } shape_t;

static const shape_t openai[] = {
    {429, "requests", "rate_limit_exceeded", "Rate limit reached for requests (injected by llmreplay). Please try again in 1s."},
    {500, "server_error", NULL, "The server had an error while processing your request. Sorry about that!"},
    {502, "server_error", NULL, "Bad gateway."},
    {503, "server_error", NULL, "The engine is currently overloaded, please try again later."},
    {0, "server_error", NULL, "The server had an error while processing your request."},
};
static const shape_t anthropic[] = {
    {400, "invalid_request_error", NULL, "Invalid request."},
    {401, "authentication_error", NULL, "invalid x-api-key"},
    {403, "permission_error", NULL, "Your API key does not have permission to use the specified resource."},
    {404, "not_found_error", NULL, "The requested resource could not be found."},
    {413, "request_too_large", NULL, "Request exceeds the maximum allowed number of bytes."},
    {429, "rate_limit_error", NULL, "Number of requests has exceeded your rate limit (injected by llmreplay)."},
    {529, "overloaded_error", NULL, "Overloaded"},
    {0, "api_error", NULL, "Internal server error"},
};
static const shape_t ollama[] = {
    {429, NULL, NULL, "too many requests"},
    {503, NULL, NULL, "server busy, please try again.  maximum pending requests exceeded"},
    {0, NULL, NULL, "llama runner process has terminated: exit status 2"},
};

static const shape_t *shape(const shape_t *t, int status)
{
    for (;; t++)
        if (!t->status || t->status == status) return t;
}

static bool is_anthropic(lr_op_t op) { return op == OP_MESSAGES; }
static bool is_ollama(lr_op_t op) { return op != OP_NONE && lr_op_info(op)->errors == ERR_OLLAMA; }

static void openai_error(buf_t *b, const shape_t *s)
{
    buf_adds(b, "{\"error\":{\"message\":");
    buf_json_strz(b, s->message);
    buf_adds(b, ",\"type\":");
    buf_json_strz(b, s->type);
    buf_adds(b, ",\"param\":null,\"code\":");
    if (s->code) buf_json_strz(b, s->code);
    else buf_adds(b, "null");
    buf_adds(b, "}}");
}

static void anthropic_error(buf_t *b, const shape_t *s)
{
    buf_adds(b, "{\"type\":\"error\",\"error\":{\"type\":");
    buf_json_strz(b, s->type);
    buf_adds(b, ",\"message\":");
    buf_json_strz(b, s->message);
    buf_adds(b, "}}");
}

static void headers(buf_t *h, lr_op_t op, int status, int retry_after)
{
    bool limited = status == 429 || status == 503 || status == 529;
    int ra = retry_after >= 0 ? retry_after : 1;
    if (limited) buf_printf(h, "retry-after: %d\r\n", ra);
    if (is_anthropic(op)) {
        buf_adds(h, "request-id: req_llmreplay_fault\r\n");
        if (status == 429)
            buf_printf(h, "anthropic-ratelimit-requests-limit: 50\r\nanthropic-ratelimit-requests-remaining: 0\r\n"
                          "anthropic-ratelimit-requests-reset: 1970-01-01T00:00:%02dZ\r\n", ra % 60);
        if (status == 529) buf_adds(h, "x-should-retry: true\r\n");
    } else if (!is_ollama(op)) {
        buf_adds(h, "x-request-id: req_llmreplay_fault\r\n");
        if (status == 429)
            buf_printf(h, "x-ratelimit-limit-requests: 500\r\nx-ratelimit-remaining-requests: 0\r\n"
                          "x-ratelimit-reset-requests: %ds\r\nx-ratelimit-limit-tokens: 30000\r\n"
                          "x-ratelimit-remaining-tokens: 0\r\nx-ratelimit-reset-tokens: %ds\r\n", ra, ra);
    }
}

lr_response_t *lr_fault_status_response(lr_op_t op, int status, int retry_after, const char *model)
{
    lr_response_t *o = calloc(1, sizeof *o);
    lr_event_t *ev = calloc(1, sizeof *ev);
    if (!o || !ev) { free(o); free(ev); return NULL; }
    o->status = status;
    o->reason = status == 529 ? "Overloaded" : lr_reason(status);
    o->content_type = "application/json";
    o->owned = true;
    buf_t b, h;
    buf_init(&b);
    buf_init(&h);
    if (is_anthropic(op)) anthropic_error(&b, shape(anthropic, status));
    else if (is_ollama(op)) {
        const char *m = shape(ollama, status)->message;
        buf_adds(&b, "{\"error\":");
        buf_json_strz(&b, m);
        buf_addc(&b, '}');
    } else if (status == 429) {
        /* OpenAI's own wording names the model and the limit */
        char msg[512];
        int ra = retry_after >= 0 ? retry_after : 1;
        snprintf(msg, sizeof msg, "Rate limit reached for %.200s in organization org-llmreplay on requests per min (RPM): "
                 "Limit 500, Used 500, Requested 1. Please try again in %ds. (injected by llmreplay)",
                 model && *model ? model : "the model", ra);
        shape_t s = *shape(openai, 429);
        s.message = msg;
        openai_error(&b, &s);
    } else openai_error(&b, shape(openai, status));
    headers(&h, op, status, retry_after);
    ev->data = buf_steal(&b, &ev->len);
    o->events = ev;
    o->nevents = 1;
    o->body_len = ev->len;
    o->extra_headers = buf_steal(&h, NULL);
    if (!ev->data || !o->extra_headers) { lr_response_free(o); return NULL; }
    return o;
}

void lr_fault_error_event(lr_op_t op, buf_t *out)
{
    const shape_t *s = shape(openai, 500);
    if (is_anthropic(op)) {
        buf_adds(out, "event: error\ndata: ");
        anthropic_error(out, shape(anthropic, 529));
        buf_adds(out, "\n\n");
    } else if (op == OP_RESPONSES) {
        buf_adds(out, "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":");
        buf_json_strz(out, s->message);
        buf_adds(out, ",\"param\":null}\n\n");
    } else if (is_ollama(op)) {
        buf_adds(out, "{\"error\":\"an error was encountered while running the model (injected by llmreplay)\"}\n");
    } else {
        buf_adds(out, "data: ");
        openai_error(out, s);
        buf_adds(out, "\n\n");
    }
}
