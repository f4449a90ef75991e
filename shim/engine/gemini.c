/* Google's generateContent family. A client of the Gemini API or of Vertex AI puts the same
 * body on the wire and the model in the URL; llama-stack records Vertex calls as the Python
 * google-genai SDK was called ({model, contents, config}) and its answers as that SDK's objects.
 * Both sides are brought to one form before matching: the wire body in camelCase, the SDK's
 * defaults filled in, and the model folded in as "model". */
#include "engine/gemini.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lr_gemini_url_model(const char *url, char *out, size_t cap)
{
    size_t n;
    const char *p = lr_url_path(url, &n), *end = p + n, *seg = end;
    while (seg > p && seg[-1] != '/') seg--;
    const char *colon = memchr(seg, ':', (size_t)(end - seg));
    if (!colon || colon == seg || (size_t)(colon - seg) + 1 > cap) return false;
    memcpy(out, seg, (size_t)(colon - seg));
    out[colon - seg] = 0;
    return true;
}

const char *lr_gemini_short_model(const char *model)
{
    const char *s = model ? strrchr(model, '/') : NULL;
    return s ? s + 1 : model ? model : "";
}

/* snake_case -> camelCase ("max_output_tokens" -> "maxOutputTokens"); a new string. */
static char *camel_key(const char *k)
{
    char *o = malloc(strlen(k) + 1), *w = o;
    if (!o) return NULL;
    for (const char *p = k; *p; p++) {
        if (*p == '_' && w > o && isalnum((unsigned char)p[1])) *w++ = (char)toupper((unsigned char)*++p);
        else *w++ = *p;
    }
    *w = 0;
    return o;
}

/* Members whose value is the user's data, never SDK field names: function arguments and
 * results, JSON schemas, labels, schema examples and defaults. */
static bool opaque(const char *k, const char *parent)
{
    static const char *const keys[] = {"args", "responseJsonSchema", "parametersJsonSchema", "labels", "example",
                                       "default", "jsonSchema", NULL};
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i])) return true;
    return !strcmp(k, "response") && parent && !strcmp(parent, "functionResponse");
}

static cJSON *camel(const cJSON *j, const char *parent);

/* A Schema's "properties": the user's property names kept, each value a Schema. */
static cJSON *camel_props(const cJSON *j)
{
    cJSON *o = J.CreateObject();
    for (const cJSON *c = j->child; c; c = c->next)
        if (c->string) J.AddItemToObject(o, c->string, camel(c, "properties"));
    return o;
}

/* A copy with SDK field names in camelCase and null members left out (the SDKs send none). */
static cJSON *camel(const cJSON *j, const char *parent)
{
    if (cJSON_IsArray(j)) {
        cJSON *a = J.CreateArray();
        for (const cJSON *c = j->child; c; c = c->next) J.AddItemToArray(a, camel(c, parent));
        return a;
    }
    if (!cJSON_IsObject(j)) return J.Duplicate(j, 1);
    cJSON *o = J.CreateObject();
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!c->string || cJSON_IsNull(c)) continue;
        char *k = camel_key(c->string);
        if (!k) continue;
        cJSON *v = opaque(k, parent) ? J.Duplicate(c, 1)
                   : !strcmp(k, "properties") && cJSON_IsObject(c) ? camel_props(c) : camel(c, k);
        J.AddItemToObject(o, k, v);
        free(k);
    }
    return o;
}

static bool is_content(const cJSON *o)
{
    return cJSON_IsObject(o) && (J.GetObjectItemCaseSensitive(o, "parts") || J.GetObjectItemCaseSensitive(o, "role"));
}

static cJSON *user_content(cJSON *parts)
{
    cJSON *c = J.CreateObject();
    J.AddItemToObject(c, "role", J.CreateString("user"));
    J.AddItemToObject(c, "parts", parts);
    return c;
}

static cJSON *as_part(const cJSON *p)
{
    if (!cJSON_IsString(p)) return J.Duplicate(p, 1);
    cJSON *o = J.CreateObject();
    J.AddItemToObject(o, "text", J.CreateString(p->valuestring));
    return o;
}

static void add_turn(cJSON *out, cJSON **pending, const cJSON *e)
{
    if (is_content(e)) {
        if (*pending) J.AddItemToArray(out, user_content(*pending));
        *pending = NULL;
        cJSON *d = J.Duplicate(e, 1);
        if (d && !J.GetObjectItemCaseSensitive(d, "role")) J.AddItemToObject(d, "role", J.CreateString("user"));
        J.AddItemToArray(out, d);
        return;
    }
    if (!*pending) *pending = J.CreateArray();
    J.AddItemToArray(*pending, as_part(e));
}

/* The SDKs' t_contents: a string is one user turn, a Part a user turn of it, a list of
 * strings and Parts between Contents one user turn of them; a missing role is "user". */
static cJSON *contents(const cJSON *c)
{
    cJSON *out = J.CreateArray(), *pending = NULL;
    if (cJSON_IsArray(c))
        for (const cJSON *e = c->child; e; e = e->next) add_turn(out, &pending, e);
    else
        add_turn(out, &pending, c);
    if (pending) J.AddItemToArray(out, user_content(pending));
    return out;
}

/* A system instruction as sent: one Content (its role is not compared: the SDKs differ). */
static cJSON *system_instruction(const cJSON *s)
{
    cJSON *a = contents(s), *c = a && a->child ? J.Duplicate(a->child, 1) : J.CreateObject();
    J.Delete(a);
    if (c) J.DeleteItemFromObjectCaseSensitive(c, "role");
    return c;
}

static bool in(const char *k, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (!strcmp(k, set[i])) return true;
    return false;
}

/* The SDK's config split as generateContent's request: request-level members at the top,
 * the rest in generationConfig, the SDK's own options dropped. */
static void split_config(const cJSON *config, cJSON *out, cJSON *gen)
{
    static const char *const top[] = {"tools", "toolConfig", "safetySettings", "cachedContent", "labels", NULL};
    static const char *const sdk_only[] = {"httpOptions", "automaticFunctionCalling", "abortSignal",
                                           "shouldReturnHttpResponse", "systemInstruction", NULL};
    for (const cJSON *c = cJSON_IsObject(config) ? config->child : NULL; c; c = c->next) {
        if (!strcmp(c->string, "systemInstruction"))
            J.AddItemToObject(out, "systemInstruction", system_instruction(c));
        else if (in(c->string, top)) J.AddItemToObject(out, c->string, J.Duplicate(c, 1));
        else if (in(c->string, sdk_only)) continue;
        else J.AddItemToObject(gen, !strcmp(c->string, "modelSelectionConfig") ? "modelConfig" : c->string,
                               J.Duplicate(c, 1));
    }
}

/* The text of an embedding's content: a string (Vertex's predict), or its parts' texts. */
static void content_text(const cJSON *c, buf_t *out)
{
    if (cJSON_IsString(c)) { buf_adds(out, c->valuestring); return; }
    const cJSON *t0 = cJSON_IsObject(c) ? J.GetObjectItemCaseSensitive(c, "text") : NULL;
    if (cJSON_IsString(t0)) { buf_adds(out, t0->valuestring); return; } /* a bare Part */
    const cJSON *parts = cJSON_IsObject(c) ? J.GetObjectItemCaseSensitive(c, "parts") : NULL;
    for (const cJSON *p = cJSON_IsArray(parts) ? parts->child : NULL; p; p = p->next) {
        const cJSON *t = cJSON_IsObject(p) ? J.GetObjectItemCaseSensitive(p, "text") : NULL;
        if (cJSON_IsString(t)) buf_adds(out, t->valuestring);
    }
}

/* One text to embed, with the options that change its vector. */
static cJSON *embed_item(const cJSON *req)
{
    cJSON *e = J.CreateObject();
    buf_t t;
    buf_init(&t);
    content_text(J.GetObjectItemCaseSensitive(req, "content"), &t);
    J.AddItemToObject(e, "text", J.CreateString(t.data ? t.data : ""));
    buf_free(&t);
    static const char *const opts[] = {"taskType", "title", NULL};
    for (int i = 0; opts[i]; i++) {
        const cJSON *v = J.GetObjectItemCaseSensitive(req, opts[i]);
        if (v) J.AddItemToObject(e, opts[i], J.Duplicate(v, 1));
    }
    return e;
}

/* The three embedding methods (embedContent, batchEmbedContents, Vertex's predict) asked in
 * one form, so a recording of one answers the others: {"embed": [{"text", "taskType",
 * "title"}], "outputDimensionality"}. Other bodies come back unchanged. */
static cJSON *embed_form(cJSON *b)
{
    const cJSON *reqs = J.GetObjectItemCaseSensitive(b, "requests"), *inst = J.GetObjectItemCaseSensitive(b, "instances");
    const cJSON *list = cJSON_IsArray(reqs) ? reqs->child : cJSON_IsArray(inst) ? inst->child : NULL;
    const cJSON *dims = NULL;
    if (cJSON_IsArray(inst)) {
        for (const cJSON *i = list; i; i = i->next)
            if (!cJSON_IsObject(i) || !cJSON_IsString(J.GetObjectItemCaseSensitive(i, "content"))) return b; /* not text */
        const cJSON *par = J.GetObjectItemCaseSensitive(b, "parameters");
        dims = cJSON_IsObject(par) ? J.GetObjectItemCaseSensitive(par, "outputDimensionality") : NULL;
    } else if (cJSON_IsArray(reqs)) {
        dims = cJSON_IsObject(list) ? J.GetObjectItemCaseSensitive(list, "outputDimensionality") : NULL;
    } else if (J.GetObjectItemCaseSensitive(b, "content") && !J.GetObjectItemCaseSensitive(b, "contents")) {
        list = b;
        dims = J.GetObjectItemCaseSensitive(b, "outputDimensionality");
    } else {
        return b;
    }
    cJSON *o = J.CreateObject(), *items = J.CreateArray();
    for (const cJSON *i = list; i; i = list == b ? NULL : i->next) J.AddItemToArray(items, embed_item(i));
    J.AddItemToObject(o, "embed", items);
    if (dims) J.AddItemToObject(o, "outputDimensionality", J.Duplicate(dims, 1));
    J.Delete(b);
    return o;
}

/* Both sides' last steps: contents as the SDKs send them, no empty generationConfig, the
 * system instruction's role left out, embeddings in one form, the model folded in. */
static cJSON *finish(cJSON *b, const char *model)
{
    if (!b) return NULL;
    b = embed_form(b);
    if (!b) return NULL;
    cJSON *c = J.GetObjectItemCaseSensitive(b, "contents");
    if (c) {
        cJSON *n = contents(c);
        J.DeleteItemFromObjectCaseSensitive(b, "contents");
        J.AddItemToObject(b, "contents", n);
    }
    cJSON *g = J.GetObjectItemCaseSensitive(b, "generationConfig");
    if (g && (!cJSON_IsObject(g) || !g->child)) J.DeleteItemFromObjectCaseSensitive(b, "generationConfig");
    cJSON *s = J.GetObjectItemCaseSensitive(b, "systemInstruction");
    if (s) {
        cJSON *n = system_instruction(s);
        J.DeleteItemFromObjectCaseSensitive(b, "systemInstruction");
        J.AddItemToObject(b, "systemInstruction", n);
    }
    J.DeleteItemFromObjectCaseSensitive(b, "model");
    J.AddItemToObject(b, "model", J.CreateString(lr_gemini_short_model(model)));
    return b;
}

cJSON *lr_gemini_client_body(const char *url, const cJSON *body)
{
    char model[256] = "";
    lr_gemini_url_model(url, model, sizeof model);
    return finish(cJSON_IsObject(body) ? camel(body, NULL) : J.CreateObject(), model);
}

/* llama-stack's embed_content recording (SDK arguments): its texts in the embedding form. */
static cJSON *sdk_embed(const cJSON *b)
{
    const cJSON *c = J.GetObjectItemCaseSensitive(b, "contents"), *cfg = J.GetObjectItemCaseSensitive(b, "config");
    cJSON *o = J.CreateObject(), *items = J.CreateArray();
    for (const cJSON *e = cJSON_IsArray(c) ? c->child : c; e; e = cJSON_IsArray(c) ? e->next : NULL) {
        cJSON *req = J.CreateObject();
        J.AddItemToObject(req, "content", J.Duplicate(e, 1));
        static const char *const opts[] = {"taskType", "title", NULL};
        for (int i = 0; opts[i] && cJSON_IsObject(cfg); i++) {
            const cJSON *v = J.GetObjectItemCaseSensitive(cfg, opts[i]);
            if (v) J.AddItemToObject(req, opts[i], J.Duplicate(v, 1));
        }
        J.AddItemToArray(items, embed_item(req));
        J.Delete(req);
    }
    J.AddItemToObject(o, "embed", items);
    const cJSON *dims = cJSON_IsObject(cfg) ? J.GetObjectItemCaseSensitive(cfg, "outputDimensionality") : NULL;
    if (dims) J.AddItemToObject(o, "outputDimensionality", J.Duplicate(dims, 1));
    return o;
}

cJSON *lr_gemini_recorded_body(const char *url, const char *model, const cJSON *body)
{
    char um[256] = "";
    if (url && strncmp(url, "vertexai:", 9) && lr_gemini_url_model(url, um, sizeof um)) model = um;
    if (!cJSON_IsObject(body)) return finish(J.CreateObject(), model);
    cJSON *b = camel(body, NULL);
    const cJSON *config = J.GetObjectItemCaseSensitive(b, "config");
    bool sdk = (url && !strncmp(url, "vertexai:", 9)) || (config && !J.GetObjectItemCaseSensitive(b, "generationConfig"));
    if (!sdk || !b) return finish(b, model);
    const cJSON *m = J.GetObjectItemCaseSensitive(b, "model");
    if (!*um && cJSON_IsString(m)) model = m->valuestring;
    size_t ul = url ? strlen(url) : 0;
    if (ul >= 14 && !strcmp(url + ul - 14, "/embed_content")) {
        cJSON *e = finish(sdk_embed(b), model);
        J.Delete(b);
        return e;
    }
    cJSON *w = J.CreateObject(), *gen = J.CreateObject();
    const cJSON *c = J.GetObjectItemCaseSensitive(b, "contents");
    if (c) J.AddItemToObject(w, "contents", J.Duplicate(c, 1));
    split_config(config, w, gen);
    J.AddItemToObject(w, "generationConfig", gen);
    w = finish(w, model);
    J.Delete(b);
    return w;
}

bool lr_gemini_answer(span_t payload, buf_t *out)
{
    if (js_kind(payload) != '{') return false;
    cJSON *j = lr_json_parse(payload.p, payload.n);
    bool sdk = false, paged = j && J.GetObjectItemCaseSensitive(j, "nextPageToken");
    for (const cJSON *c = j ? j->child : NULL; c && !sdk; c = c->next) sdk = c->string && strchr(c->string, '_');
    if (!sdk && !paged) { J.Delete(j); return false; }
    /* a listing is one page: the same recording would answer every next page, without end */
    J.DeleteItemFromObjectCaseSensitive(j, "nextPageToken");
    J.DeleteItemFromObjectCaseSensitive(j, "next_page_token");
    /* members the SDK adds that were never on the wire */
    J.DeleteItemFromObjectCaseSensitive(j, "sdk_http_response");
    J.DeleteItemFromObjectCaseSensitive(j, "automatic_function_calling_history");
    J.DeleteItemFromObjectCaseSensitive(j, "parsed");
    cJSON *w = camel(j, NULL);
    char *s = w ? J.PrintUnformatted(w) : NULL;
    if (s) buf_adds(out, s);
    J.free(s);
    J.Delete(w);
    J.Delete(j);
    return s != NULL;
}

static const char *status_name(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "UNKNOWN";
    }
}

void lr_gemini_error_body(int status, const char *msg, buf_t *out)
{
    buf_printf(out, "{\"error\":{\"code\":%d,\"message\":", status);
    buf_json_strz(out, msg);
    buf_printf(out, ",\"status\":\"%s\"}}", status_name(status));
}

const char *lr_gemini_token_body(void)
{
    return "{\"access_token\":\"llmreplay-replay-token\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
}

char *lr_url_without_key(const char *url)
{
    const char *q = strchr(url, '?');
    if (!q || !strstr(q, "key=")) return NULL;
    size_t fl = strcspn(q, "#");
    buf_t b;
    buf_init(&b);
    buf_add(&b, url, (size_t)(q - url));
    char sep = '?';
    for (const char *p = q + 1, *end = q + fl; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (!(e - p >= 4 && !memcmp(p, "key=", 4)) && e > p) {
            buf_addc(&b, sep);
            buf_add(&b, p, (size_t)(e - p));
            sep = '&';
        }
        p = e + (amp ? 1 : 0);
    }
    buf_adds(&b, q + fl);
    return buf_steal(&b, NULL);
}

/* The vectors of an embedding answer of any of the three methods (spans into body). */
static int vectors(span_t body, span_t *v, int cap)
{
    span_t x, arr, item, e;
    int n = 0;
    if (js_get(body, "embedding", &x) && js_get(x, "values", &v[0])) return 1;
    bool pred = !js_get(body, "embeddings", &arr);
    if (pred && !js_get(body, "predictions", &arr)) return 0;
    for (const char *pos = NULL; n < cap && js_next(arr, &pos, &item);) {
        if (pred ? js_get(item, "embeddings", &e) && js_get(e, "values", &v[n]) : js_get(item, "values", &v[n])) n++;
        else return 0;
    }
    return n;
}

/* An embedding answer of one method reshaped for another (the vectors' bytes as recorded). */
lr_response_t *lr_gemini_adapt(const lr_response_t *r, lr_op_t want)
{
    const char *w = lr_op_info(want)->name;
    bool one = !strcmp(w, "gemini.embed"), batch = !strcmp(w, "gemini.batch_embed"), pred = !strcmp(w, "gemini.predict");
    if (!(one || batch || pred) || r->status != 200 || r->stream || r->nevents != 1) return NULL;
    span_t v[256];
    int n = vectors((span_t){r->events[0].data, r->events[0].len}, v, 256);
    if (n < 1) return NULL;
    buf_t b;
    buf_init(&b);
    buf_adds(&b, one ? "{\"embedding\":" : batch ? "{\"embeddings\":[" : "{\"predictions\":[");
    for (int i = 0; i < (one ? 1 : n); i++) {
        buf_adds(&b, i ? "," : "");
        buf_adds(&b, pred ? "{\"embeddings\":{\"values\":" : "{\"values\":");
        js_minify(v[i], &b);
        buf_adds(&b, pred ? "}}" : "}");
    }
    buf_adds(&b, one ? "}" : "]}");
    lr_response_t *o = calloc(1, sizeof *o);
    lr_event_t *ev = calloc(1, sizeof *ev);
    char *h = r->extra_headers ? strdup(r->extra_headers) : NULL;
    size_t len;
    char *d = b.oom ? NULL : buf_steal(&b, &len);
    buf_free(&b);
    if (!o || !ev || !d || (r->extra_headers && !h)) { free(o); free(ev); free(h); free(d); return NULL; }
    *o = *r;
    o->body = NULL; /* its own single event, not r's block */
    o->own_ctype = NULL;
    *ev = (lr_event_t){d, len};
    o->events = ev;
    o->body_len = len;
    o->extra_headers = h;
    o->times_ms = NULL;
    o->ntimes = 0;
    o->owned = true;
    return o;
}
