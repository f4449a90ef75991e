/* Gemini and raw HTTP helpers (engine/gemini.c, engine/raw.c) on "URL\0BODY\0PAYLOAD": the
 * model from the URL, the client's and a recording's body as matched, the SDK answer turned
 * into wire JSON, the key left out of the URL; base64 round trips, the text and multipart
 * sniffers a raw recording relies on. */
#include "engine/gemini.h"
#include "engine/raw.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static bool init;
    if (!init) { fz_quiet(); init = true; }
    if (!lr_cjson()) abort();
    size_t ul, bl, pl;
    const uint8_t *u = fz_field(d, n, 0, &ul), *b = fz_field(d, n, 1, &bl), *p = fz_field(d, n, 2, &pl);
    char *url = fz_str(u, ul), model[256];
    if (lr_gemini_url_model(url, model, sizeof model)) {
        if (strnlen(model, sizeof model) == sizeof model) abort();
        const char *sm = lr_gemini_short_model(model);
        if (sm < model || sm > model + strlen(model)) abort();
    }
    cJSON *body = bl ? lr_json_parse((const char *)b, bl) : NULL;
    cJSON *cb = lr_gemini_client_body(url, body), *rb = lr_gemini_recorded_body(url, model, body);
    J.Delete(cb);
    J.Delete(rb);
    J.Delete(body);
    buf_t o;
    buf_init(&o);
    if (lr_gemini_answer((span_t){(const char *)p, pl}, &o) && !o.oom && !js_valid((span_t){o.data ? o.data : "", o.len}))
        abort(); /* wire JSON made from valid input is valid */
    buf_free(&o);
    char *nokey = lr_url_without_key(url);
    if (nokey && strstr(nokey, "key=") && !strstr(url, "key=")) abort();
    free(nokey);
    /* base64: encode then decode gives the bytes back; any decode is bounded */
    buf_t e, r;
    buf_init(&e);
    buf_init(&r);
    lr_b64_encode(p, pl, &e);
    if (!e.oom && (!lr_b64_decode(e.data ? e.data : "", e.len, &r) || r.len != pl || (pl && memcmp(r.data, p, pl)))) abort();
    buf_free(&r);
    buf_init(&r);
    lr_b64_decode((const char *)b, bl, &r);
    if (r.len > bl) abort();
    buf_free(&e);
    buf_free(&r);
    lr_raw_is_text((const char *)p, pl);
    const char *mb;
    size_t mbn;
    if (lr_multipart_boundary((const char *)b, bl, &mb, &mbn) && (mb < (const char *)b || mb + mbn > (const char *)b + bl)) abort();
    lr_raw_keep_header((const char *)u, ul);
    free(url);
    return 0;
}
