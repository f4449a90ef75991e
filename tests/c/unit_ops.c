/* The operation table: a made-up operation added as one row is recognised, matched, rendered
 * and typed like a built-in one; match keys name operations, so a row inserted in the middle
 * keeps every other operation's keys; an index made with another table is rebuilt.
 * One line per check, "ok NAME" or "not ok NAME: detail"; exit status 1 when any failed. */
#include "unit.h"
#include "base/config.h"
#include "engine/index.h"
#include "engine/ops.h"
#include "engine/recording.h"
#include "engine/render.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The recipe of README "Adding an API operation": this row is all a new operation needs. */
static const lr_opinfo_t RERANK = {
    .name = "rerank", .endpoint = "/v1/rerank", .tail = "rerank", .parent = PARENT_API, .aliases = "/rerank",
    .type = "cohere.types.RerankResponse", .chunk_type = "cohere.types.RerankStreamEvent",
};

static lr_opinfo_t rows[64];

/* The built-in table with row inserted at position at. */
static int table_with(const lr_opinfo_t *row, int at)
{
    int n;
    const lr_opinfo_t *b = lr_ops_builtin(&n);
    memcpy(rows, b, sizeof *b * (size_t)at);
    rows[at] = *row;
    memcpy(rows + at + 1, b + at, sizeof *b * (size_t)(n - at));
    lr_ops_use(rows, n + 1);
    return n + 1;
}

static void key_of(const char *opname, const char *body, uint64_t *h1)
{
    cJSON *j = lr_json_parse(body, strlen(body));
    uint64_t h2;
    lr_match_key(lr_op_named(opname), "POST", j, NULL, h1, &h2);
    if (j) J.Delete(j);
}

static void test_new_row(void)
{
    int n;
    lr_ops_builtin(&n);
    table_with(&RERANK, n); /* appended */
    lr_op_t op = lr_op_of_url("https://api.example.com/v1/rerank?x=1");
    check(op == (lr_op_t)n && lr_op_named("rerank") == op, "ops.new.of_url", "op %d, want %d", op, n);
    check(lr_op_of_url("https://example.com/rerank") == OP_NONE, "ops.new.needs_api_parent", "recognised");
    check(lr_op_of_endpoint("/v1/rerank") == op && lr_op_of_endpoint("/rerank") == op, "ops.new.endpoint", "not recognised");
    check(lr_op_of_url("https://api.openai.com/v1/chat/completions") == OP_CHAT, "ops.new.others_unchanged", "chat moved");
    span_t data = {"{\"results\":[]}", 14};
    check(!strcmp(lr_op_type_name(op, false, data), RERANK.type) && !strcmp(lr_op_type_name(op, true, data), RERANK.chunk_type),
          "ops.new.type_names", "%s", lr_op_type_name(op, false, data));
    lr_response_t *e = lr_render_error(op, 404, "invalid_request_error", "c", "no");
    check(e && e->nevents == 1 && !strncmp(e->events[0].data, "{\"error\":{\"message\":\"no\"", 24), "ops.new.error_dialect",
          "%.*s", e ? (int)e->events[0].len : 0, e ? e->events[0].data : "");
    lr_response_free(e);
    const char *rec = "{\"request\":{\"method\":\"POST\",\"url\":\"https://api.example.com/v1/rerank\",\"endpoint\":\"/v1/rerank\","
                      "\"body\":{\"model\":\"r1\",\"query\":\"q\"}},\"response\":{\"body\":{\"__type__\":\"x\",\"__data__\":"
                      "{\"results\":[1]}}}}";
    char why[256] = "";
    lr_rec_t *r = lr_rec_parse("/nonexistent/rerank.json", rec, strlen(rec), NULL, why, sizeof why);
    check(r && r->op == op && !strcmp(r->model, "r1"), "ops.new.recording", "%s", why);
    lr_rec_free(r);
    lr_ops_use(NULL, 0);
}

static void test_stable_keys(void)
{
    const char *body = "{\"model\":\"m\",\"messages\":[]}";
    uint64_t before, after, before_e, after_e;
    uint64_t digest = lr_ops_digest();
    key_of("chat", body, &before);
    key_of("ollama.embeddings", body, &before_e);
    table_with(&RERANK, 1); /* inserted before chat: every row number after it shifts */
    key_of("chat", body, &after);
    key_of("ollama.embeddings", body, &after_e);
    check(lr_op_named("chat") != OP_CHAT && before == after && before_e == after_e, "ops.keys.by_name",
          "chat row %d, keys %llx/%llx", lr_op_named("chat"), (unsigned long long)before, (unsigned long long)after);
    uint64_t k2;
    key_of("completions", body, &k2);
    check(k2 == after, "ops.keys.class", "completions does not match as chat");
    check(lr_ops_digest() != digest, "ops.digest.changes", "same digest");
    lr_ops_use(NULL, 0);
    check(lr_ops_digest() == digest, "ops.digest.restored", "differs");
}

/* An index written with the built-in table is refused, with a reason, under another one. */
static void test_index_rebuilt(void)
{
    char dir[] = "/tmp/llmreplay-ops-XXXXXX";
    if (!mkdtemp(dir)) { check(false, "ops.index.tmp", "mkdtemp failed"); return; }
    char path[64];
    snprintf(path, sizeof path, "%s/index.bin", dir);
    lr_sdir_t d = {dir, 1, 1};
    lr_ixsrc_t src = {.dirs = &d, .ndirs = 1};
    check(lr_index_write(&src, path, 7), "ops.index.write", "write failed");
    char why[256] = "";
    lr_index_t *ix = lr_index_open(path, 7, why, sizeof why);
    check(ix != NULL, "ops.index.same_table", "%s", why);
    lr_index_close(ix);
    int n;
    lr_ops_builtin(&n);
    table_with(&RERANK, n);
    ix = lr_index_open(path, 7, why, sizeof why);
    check(!ix && strstr(why, "another operation table"), "ops.index.other_table", "opened (%s)", why);
    lr_index_close(ix);
    lr_ops_use(NULL, 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!lr_cjson()) { printf("not ok cjson: libcjson is not available\n"); return 1; }
    test_new_row();
    test_stable_keys();
    test_index_rebuilt();
    return failures ? 1 : 0;
}
