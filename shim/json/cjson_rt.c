#include "json/cjson_rt.h"
#include "base/log.h"
#include "base/real.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

static lr_cjson_t table;
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = lr_dlopen_private("libcjson.so.1"); /* never a host's own cJSON_* */
    if (!h) {
        lr_error("cannot load libcjson.so.1 (%s); install it: apt-get install libcjson1", dlerror());
        return;
    }
#define SYM(field, name) if (!(*(void **)&table.field = dlsym(h, name))) goto missing
    SYM(ParseWithLengthOpts, "cJSON_ParseWithLengthOpts");
    SYM(Delete, "cJSON_Delete");
    SYM(PrintUnformatted, "cJSON_PrintUnformatted");
    SYM(Print, "cJSON_Print");
    SYM(free, "cJSON_free");
    SYM(GetObjectItemCaseSensitive, "cJSON_GetObjectItemCaseSensitive");
    SYM(GetArraySize, "cJSON_GetArraySize");
    SYM(CreateObject, "cJSON_CreateObject");
    SYM(CreateArray, "cJSON_CreateArray");
    SYM(CreateString, "cJSON_CreateString");
    SYM(CreateNumber, "cJSON_CreateNumber");
    SYM(CreateBool, "cJSON_CreateBool");
    SYM(CreateNull, "cJSON_CreateNull");
    SYM(AddItemToObject, "cJSON_AddItemToObject");
    SYM(AddItemToArray, "cJSON_AddItemToArray");
    SYM(Duplicate, "cJSON_Duplicate");
    SYM(DeleteItemFromObjectCaseSensitive, "cJSON_DeleteItemFromObjectCaseSensitive");
    SYM(DetachItemFromObjectCaseSensitive, "cJSON_DetachItemFromObjectCaseSensitive");
    SYM(DetachItemViaPointer, "cJSON_DetachItemViaPointer");
#undef SYM
    loaded = true;
    return;
missing:
    lr_error("libcjson.so.1 lacks a needed symbol (%s); install libcjson1 >= 1.7.13", dlerror());
}

const lr_cjson_t *lr_cjson(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}

cJSON *lr_json_parse(const char *s, size_t n)
{
    const lr_cjson_t *c = lr_cjson();
    if (!c || !s) return NULL;
    const char *end = NULL;
    cJSON *j = c->ParseWithLengthOpts(s, n, &end, 0);
    if (!j) return NULL;
    /* cJSON stops after the first value: trailing garbage means the input was not one JSON value. */
    const char *stop = s + n;
    while (end && end < stop && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t' || *end == 0)) end++;
    if (end && end < stop) { c->Delete(j); return NULL; }
    return j;
}
