/* setenv and friends, watched for PYTEST_CURRENT_TEST (see engine/testid.h): after the real
 * call, the thread that changed the environment reads the new value and hands a copy to the
 * engine. Nothing else is changed: every call is passed through as it is. */
#include "base/real.h"
#include "engine/testid.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define real (*lr_libc())
#define VAR "PYTEST_CURRENT_TEST"

static void changed(const char *name, size_t n)
{
    if (name && n == sizeof VAR - 1 && !memcmp(name, VAR, n)) lr_testid_pytest(getenv(VAR));
}

__attribute__((constructor)) static void env_init(void) { lr_testid_pytest(getenv(VAR)); }

LR_EXPORT int setenv(const char *name, const char *value, int overwrite)
{
    if (!real.setenv) { errno = ENOSYS; return -1; }
    int r = real.setenv(name, value, overwrite);
    if (r == 0) changed(name, strlen(name));
    return r;
}

LR_EXPORT int unsetenv(const char *name)
{
    if (!real.unsetenv) { errno = ENOSYS; return -1; }
    int r = real.unsetenv(name);
    if (r == 0) changed(name, strlen(name));
    return r;
}

LR_EXPORT int putenv(char *string)
{
    if (!real.putenv) { errno = ENOSYS; return -1; }
    int r = real.putenv(string);
    if (r == 0) changed(string, strcspn(string, "="));
    return r;
}

LR_EXPORT int clearenv(void)
{
    if (!real.clearenv) { errno = ENOSYS; return -1; }
    int r = real.clearenv();
    if (r == 0) lr_testid_pytest(NULL);
    return r;
}
