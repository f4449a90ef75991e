/* cJSON, loaded at run time into its own symbol scope.
 * The host may carry its own cJSON_* symbols (a different version, custom hooks): calling
 * through this table guarantees the shim reaches the Debian libcjson it was built against,
 * and a process that never calls an LLM never loads it. */
#ifndef LR_CJSON_RT_H
#define LR_CJSON_RT_H
#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct {
    cJSON *(*ParseWithLengthOpts)(const char *, size_t, const char **, cJSON_bool);
    void (*Delete)(cJSON *);
    char *(*PrintUnformatted)(const cJSON *);
    char *(*Print)(const cJSON *);
    void (*free)(void *);
    cJSON *(*GetObjectItemCaseSensitive)(const cJSON *, const char *);
    int (*GetArraySize)(const cJSON *);
    cJSON *(*CreateObject)(void);
    cJSON *(*CreateArray)(void);
    cJSON *(*CreateString)(const char *);
    cJSON *(*CreateNumber)(double);
    cJSON *(*CreateBool)(cJSON_bool);
    cJSON *(*CreateNull)(void);
    cJSON_bool (*AddItemToObject)(cJSON *, const char *, cJSON *);
    cJSON_bool (*AddItemToArray)(cJSON *, cJSON *);
    cJSON *(*Duplicate)(const cJSON *, cJSON_bool);
    void (*DeleteItemFromObjectCaseSensitive)(cJSON *, const char *);
    cJSON *(*DetachItemFromObjectCaseSensitive)(cJSON *, const char *);
    cJSON *(*DetachItemViaPointer)(cJSON *, cJSON *);
} lr_cjson_t;

/* cJSON's type predicates are library functions: inline them so no cJSON symbol is linked. */
static inline bool lr_json_is(const cJSON *j, int t) { return j && (j->type & 0xFF) == t; }
#define cJSON_IsString(j) lr_json_is((j), cJSON_String)
#define cJSON_IsObject(j) lr_json_is((j), cJSON_Object)
#define cJSON_IsArray(j) lr_json_is((j), cJSON_Array)
#define cJSON_IsNumber(j) lr_json_is((j), cJSON_Number)
#define cJSON_IsNull(j) lr_json_is((j), cJSON_NULL)

/* NULL (with one error line) when libcjson cannot be loaded. */
const lr_cjson_t *lr_cjson(void);
/* Parse exactly n bytes; NULL on invalid JSON. */
cJSON *lr_json_parse(const char *s, size_t n);
#define J (*lr_cjson())
#endif
