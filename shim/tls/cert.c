/* Certificates for intercepted TLS, written once against the lr_crypto table (cert_impl.h):
 * in the shim that table holds the host's own libcrypto, so the keys and certificates made
 * here can be handed to the host's libssl; this file never links or loads a libcrypto. */
#include "tls/cert_impl.h"
#include "base/real.h"
#include "base/util.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the host's libcrypto ------------------------------------------------------------- */

static struct lr_crypto host_table;
static bool host_ok; /* set once the table is complete; a failed look-up is tried again */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;

static bool host_resolve(void)
{
    /* RTLD_NOLOAD: only a libcrypto the host loaded itself; a second copy must never appear */
    void *h = lr_dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return false;
#define LR_CRYPTO_SYM(f) if (!(host_table.f = (__typeof__(host_table.f))dlsym(h, #f))) return false;
    LR_CRYPTO_FUNCS(LR_CRYPTO_SYM)
    return true; /* h stays open: the table points into it */
}

const lr_crypto_t *lr_crypto_host(void)
{
    if (__atomic_load_n(&host_ok, __ATOMIC_ACQUIRE)) return &host_table;
    /* not pthread_once: the host may load libcrypto after our first look */
    pthread_mutex_lock(&host_lock);
    if (!host_ok && host_resolve()) __atomic_store_n(&host_ok, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&host_lock);
    return host_ok ? &host_table : NULL;
}

/* ---- building certificates ------------------------------------------------------------ */

typedef struct leaf {
    struct leaf *next;
    X509 *cert;
    char name[];
} leaf_t;

struct lr_issuer {
    const lr_crypto_t *cr;
    EVP_PKEY *ca_key, *leaf_key;
    X509 *ca;
    leaf_t *leaves; /* guarded by leaf_lock; never evicted: callers borrow the certificates */
};

/* One lock for every issuer's leaf list. Taken across fork (atfork) so a child forked while
 * another thread issues a certificate does not inherit it locked. */
static pthread_mutex_t leaf_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void leaf_lock_take(void) { pthread_mutex_lock(&leaf_lock); }
static void leaf_lock_drop(void) { pthread_mutex_unlock(&leaf_lock); }
static void atfork_register(void) { pthread_atfork(leaf_lock_take, leaf_lock_drop, leaf_lock_drop); }

static EVP_PKEY *new_key(const lr_crypto_t *cr) { return cr->EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); }

static bool add_ext(const lr_crypto_t *cr, X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    memset(&ctx, 0, sizeof ctx);
    cr->X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = cr->X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e) return false;
    bool ok = cr->X509_add_ext(x, e, -1) == 1;
    cr->X509_EXTENSION_free(e);
    return ok;
}

static bool add_name(const lr_crypto_t *cr, X509_NAME *n, const char *field, const char *value)
{
    return cr->X509_NAME_add_entry_by_txt(n, field, MBSTRING_ASC, (const unsigned char *)value, -1, -1, 0) == 1;
}

/* A v3 certificate for pub: random serial, valid from a day ago (clock skew) for days. */
static X509 *new_cert(const lr_crypto_t *cr, EVP_PKEY *pub, long days)
{
    X509 *x = cr->X509_new();
    unsigned char serial[16];
    if (!x || cr->RAND_bytes(serial, sizeof serial) != 1) goto fail;
    /* top bit clear, next set: a positive 16-byte DER integer with no padding byte */
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
    if (cr->X509_set_version(x, X509_VERSION_3) != 1 ||
        cr->ASN1_STRING_set(cr->X509_get_serialNumber(x), serial, sizeof serial) != 1 ||
        !cr->X509_time_adj_ex(cr->X509_getm_notBefore(x), -1, 0, NULL) ||
        !cr->X509_time_adj_ex(cr->X509_getm_notAfter(x), (int)days, 0, NULL) || cr->X509_set_pubkey(x, pub) != 1)
        goto fail;
    return x;
fail:
    if (x) cr->X509_free(x);
    return NULL;
}

static X509 *make_ca(const lr_crypto_t *cr, EVP_PKEY *key)
{
    X509 *x = new_cert(cr, key, 3650);
    if (!x) return NULL;
    X509_NAME *n = cr->X509_get_subject_name(x);
    if (add_name(cr, n, "O", "llmreplay") && add_name(cr, n, "CN", "llmreplay local CA") &&
        cr->X509_set_issuer_name(x, n) == 1 && add_ext(cr, x, x, NID_basic_constraints, "critical,CA:TRUE") &&
        add_ext(cr, x, x, NID_key_usage, "critical,keyCertSign,cRLSign") &&
        add_ext(cr, x, x, NID_subject_key_identifier, "hash") && cr->X509_sign(x, key, cr->EVP_sha256()) > 0)
        return x;
    cr->X509_free(x);
    return NULL;
}

/* name as a certificate names it: an IP literal (IPv6 without its brackets), or a DNS name
 * in lower case. Anything else (commas, spaces...) could inject other SAN entries: refused. */
static bool normalize(const char *name, char *out, size_t cap, bool *ip)
{
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') name++, n -= 2;
    if (n == 0 || n >= cap || n > 253) return false;
    memcpy(out, name, n);
    out[n] = 0;
    unsigned char addr[16];
    *ip = inet_pton(AF_INET, out, addr) == 1 || inet_pton(AF_INET6, out, addr) == 1;
    if (*ip) return true;
    for (char *c = out; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
        if (!isalnum((unsigned char)*c) && !strchr("-._*", *c)) return false;
    }
    return true;
}

static X509 *make_leaf(lr_issuer_t *is, const char *name, bool ip)
{
    const lr_crypto_t *cr = is->cr;
    X509 *x = new_cert(cr, is->leaf_key, 90);
    if (!x) return NULL;
    char san[300];
    snprintf(san, sizeof san, "%s:%s", ip ? "IP" : "DNS", name);
    X509_NAME *n = cr->X509_get_subject_name(x);
    /* the CN is limited to 64 characters; clients match the subjectAltName anyway */
    bool ok = add_name(cr, n, "O", "llmreplay") && (strlen(name) > 64 || add_name(cr, n, "CN", name)) &&
              cr->X509_set_issuer_name(x, cr->X509_get_subject_name(is->ca)) == 1 &&
              add_ext(cr, x, is->ca, NID_basic_constraints, "CA:FALSE") &&
              add_ext(cr, x, is->ca, NID_key_usage, "critical,digitalSignature") &&
              add_ext(cr, x, is->ca, NID_ext_key_usage, "serverAuth") && add_ext(cr, x, is->ca, NID_subject_alt_name, san) &&
              add_ext(cr, x, is->ca, NID_subject_key_identifier, "hash") &&
              add_ext(cr, x, is->ca, NID_authority_key_identifier, "keyid") &&
              cr->X509_sign(x, is->ca_key, cr->EVP_sha256()) > 0;
    if (ok) return x;
    cr->X509_free(x);
    return NULL;
}

/* Takes ownership of ca_key and ca. */
static lr_issuer_t *issuer_new(const lr_crypto_t *cr, EVP_PKEY *ca_key, X509 *ca)
{
    pthread_once(&atfork_once, atfork_register);
    lr_issuer_t *is = calloc(1, sizeof *is);
    EVP_PKEY *leaf_key = is ? new_key(cr) : NULL;
    if (!leaf_key) {
        free(is);
        cr->EVP_PKEY_free(ca_key);
        cr->X509_free(ca);
        return NULL;
    }
    *is = (lr_issuer_t){.cr = cr, .ca_key = ca_key, .leaf_key = leaf_key, .ca = ca};
    return is;
}

lr_issuer_t *lr_issuer_ephemeral(const lr_crypto_t *cr)
{
    if (!cr) return NULL;
    cr->ERR_set_mark(); /* the host's error queue is left as it was */
    EVP_PKEY *key = new_key(cr);
    X509 *ca = key ? make_ca(cr, key) : NULL;
    lr_issuer_t *is = NULL;
    if (ca) is = issuer_new(cr, key, ca);
    else if (key) cr->EVP_PKEY_free(key);
    cr->ERR_pop_to_mark();
    return is;
}

X509 *lr_issuer_leaf(lr_issuer_t *is, const char *name)
{
    char norm[256];
    bool ip;
    if (!is || !name || !normalize(name, norm, sizeof norm, &ip)) return NULL;
    pthread_mutex_lock(&leaf_lock);
    leaf_t *l = is->leaves;
    while (l && strcmp(l->name, norm)) l = l->next;
    if (!l) {
        is->cr->ERR_set_mark();
        X509 *x = make_leaf(is, norm, ip);
        is->cr->ERR_pop_to_mark();
        l = x ? malloc(sizeof *l + strlen(norm) + 1) : NULL;
        if (l) {
            l->cert = x;
            strcpy(l->name, norm);
            l->next = is->leaves;
            is->leaves = l;
        } else if (x) is->cr->X509_free(x);
    }
    pthread_mutex_unlock(&leaf_lock);
    return l ? l->cert : NULL;
}

EVP_PKEY *lr_issuer_leaf_key(lr_issuer_t *is) { return is ? is->leaf_key : NULL; }
X509 *lr_issuer_ca_cert(lr_issuer_t *is) { return is ? is->ca : NULL; }

void lr_issuer_free(lr_issuer_t *is)
{
    if (!is) return;
    for (leaf_t *l = is->leaves, *next; l; l = next) {
        next = l->next;
        is->cr->X509_free(l->cert);
        free(l);
    }
    is->cr->EVP_PKEY_free(is->leaf_key);
    is->cr->EVP_PKEY_free(is->ca_key);
    is->cr->X509_free(is->ca);
    free(is);
}

/* ---- the persistent CA ---------------------------------------------------------------- */

/* An encrypted key must fail, never prompt on the host's terminal. */
static int no_password(char *buf, int size, int rwflag, void *u) { return -1; }

/* A fresh temporary file beside path, as a stream for the PEM writers (base/fs.h). */
static FILE *tmp_open(const char *path, unsigned mode, char *tmp, size_t cap)
{
    int fd = lr_tmp_open(path, mode, tmp, cap);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f && fd >= 0) { lr_close(fd); unlink(tmp); }
    return f;
}

/* Publish the temporary file as path (first_wins: link(), false with EEXIST when another
 * writer won), durably; closes f. */
static bool tmp_commit(FILE *f, const char *tmp, const char *path, bool first_wins)
{
    bool ok = fflush(f) == 0;
    if (!ok) unlink(tmp);
    ok = ok && lr_tmp_publish(fileno(f), tmp, path, first_wins);
    int e = errno;
    ok = fclose(f) == 0 && ok;
    errno = e;
    return ok;
}

#define ERR(...) snprintf(err, errcap, __VA_ARGS__)

/* ca-key.pem: 1 loaded (with the certificate stored after the key, when there), 0 absent,
 * -1 refused or unreadable (err says why and what to do). */
static int load_key(const lr_crypto_t *cr, const char *dir, EVP_PKEY **key, X509 **cert, char *err, size_t errcap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/ca-key.pem", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        ERR("cannot read %s: %s (delete %s/ca.pem and %s to make a new CA)", path, strerror(errno), dir, path);
        if (fd >= 0) lr_close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        lr_close(fd);
        ERR("%s is open to other users or not yours: run chmod 600 %s, or delete it and %s/ca.pem to make a new CA", path,
            path, dir);
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) { lr_close(fd); ERR("cannot read %s: %s", path, strerror(errno)); return -1; }
    *key = cr->PEM_read_PrivateKey(f, NULL, no_password, NULL);
    *cert = *key ? cr->PEM_read_X509(f, NULL, no_password, NULL) : NULL;
    fclose(f);
    if (*key) return 1;
    ERR("%s holds no unencrypted private key: delete it and %s/ca.pem to make a new CA", path, dir);
    return -1;
}

/* A new CA published as ca-key.pem (key, then its certificate) with link(): when several
 * processes start at once exactly one file wins; every process then loads the winner. */
static bool create_ca(const lr_crypto_t *cr, const char *dir, char *err, size_t errcap)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/ca-key.pem", dir);
    EVP_PKEY *key = new_key(cr);
    X509 *ca = key ? make_ca(cr, key) : NULL;
    bool ok = false;
    FILE *f = ca ? tmp_open(path, 0600, tmp, sizeof tmp) : NULL;
    if (!ca) ERR("cannot generate a CA key and certificate with libcrypto");
    else if (!f) ERR("cannot write in %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)", dir, strerror(errno));
    else if (!cr->PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || !cr->PEM_write_X509(f, ca)) {
        fclose(f);
        unlink(tmp);
        ERR("cannot write %s (is the disk full?)", tmp);
    } else if (!tmp_commit(f, tmp, path, true) && errno != EEXIST)
        ERR("cannot create %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)", path, strerror(errno));
    else ok = true;
    if (ca) cr->X509_free(ca);
    if (key) cr->EVP_PKEY_free(key);
    return ok;
}

static bool write_cert(const lr_crypto_t *cr, const char *path, X509 *x)
{
    char tmp[4300];
    FILE *f = tmp_open(path, 0644, tmp, sizeof tmp);
    if (!f) return false;
    if (!cr->PEM_write_X509(f, x)) { fclose(f); unlink(tmp); return false; }
    return tmp_commit(f, tmp, path, false);
}

/* ca.pem; written from the copy in ca-key.pem when missing (its creator may have died
 * between the two files, or another process is about to write the same bytes). */
static X509 *load_cert(const lr_crypto_t *cr, const char *dir, X509 **kcert, char *err, size_t errcap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    FILE *f = fopen(path, "re");
    if (f) {
        X509 *x = cr->PEM_read_X509(f, NULL, no_password, NULL);
        fclose(f);
        if (!x) ERR("%s holds no certificate: delete it and %s/ca-key.pem to make a new CA", path, dir);
        return x;
    }
    if (errno != ENOENT || !*kcert) {
        ERR("cannot read %s: %s (delete %s/ca-key.pem too to make a new CA)", path, strerror(errno), dir);
        return NULL;
    }
    if (!write_cert(cr, path, *kcert)) {
        ERR("cannot write %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)", path, strerror(errno));
        return NULL;
    }
    X509 *x = *kcert;
    *kcert = NULL;
    return x;
}

static int64_t mtime_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? lr_mtime_ns(&st) : -1;
}

/* ca-bundle.pem = the system's trusted CAs + ours: for SSL_CERT_FILE and friends, which
 * replace the system bundle instead of adding to it. */
static void write_bundle(const char *dir)
{
    static const char *sys[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"};
    const char *sysb = NULL;
    for (size_t i = 0; i < sizeof sys / sizeof *sys && !sysb; i++)
        if (access(sys[i], R_OK) == 0) sysb = sys[i];
    char ca[4200], bundle[4200];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", dir);
    lr_trust_bundle(sysb, ca, bundle);
}

bool lr_trust_bundle(const char *base, const char *ca, const char *dest)
{
    int64_t d = mtime_of(dest), b = base ? mtime_of(base) : 0;
    if (d >= 0 && b >= 0 && d >= b && d >= mtime_of(ca)) return true; /* up to date */
    size_t n1 = 0, n2 = 0;
    char *s = base ? lr_read_file(base, (size_t)64 << 20, &n1) : NULL;
    char *c = lr_read_file(ca, 1 << 20, &n2);
    char tmp[4400];
    FILE *f = c && (!base || s) ? tmp_open(dest, 0644, tmp, sizeof tmp) : NULL;
    bool ok = false;
    if (f) {
        ok = (!n1 || fwrite(s, 1, n1, f) == n1) && (!n1 || s[n1 - 1] == '\n' || fputc('\n', f) != EOF) &&
             fwrite(c, 1, n2, f) == n2;
        if (ok) ok = tmp_commit(f, tmp, dest, false);
        else { fclose(f); unlink(tmp); }
    }
    free(s);
    free(c);
    return ok;
}

static lr_issuer_t *persistent(const lr_crypto_t *cr, const char *dir, char *err, size_t errcap)
{
    EVP_PKEY *key = NULL;
    X509 *kcert = NULL, *ca = NULL;
    int r = 0;
    for (int attempt = 0; attempt < 2 && r == 0; attempt++) {
        r = load_key(cr, dir, &key, &kcert, err, errcap);
        if (r == 0 && !create_ca(cr, dir, err, errcap)) return NULL;
    }
    if (r <= 0) {
        if (r == 0) ERR("%s/ca-key.pem vanished while it was created: try again", dir);
        return NULL;
    }
    ca = load_cert(cr, dir, &kcert, err, errcap);
    if (kcert) cr->X509_free(kcert);
    if (ca && cr->X509_check_private_key(ca, key) != 1) {
        ERR("%s/ca.pem and %s/ca-key.pem do not match: delete both to make a new CA", dir, dir);
        cr->X509_free(ca);
        ca = NULL;
    }
    if (!ca) { cr->EVP_PKEY_free(key); return NULL; }
    write_bundle(dir);
    lr_issuer_t *is = issuer_new(cr, key, ca);
    if (!is) ERR("cannot generate a leaf key with libcrypto");
    return is;
}

lr_issuer_t *lr_issuer_persistent(const lr_crypto_t *cr, const char *dir, char *err, size_t errcap)
{
    if (!cr) {
        ERR("no usable libcrypto 3 in this process");
        return NULL;
    }
    if (strlen(dir) > 4000) errno = ENAMETOOLONG; /* the paths below have room for 4200 */
    if (errno == ENAMETOOLONG || !lr_mkdirs(dir, 0700)) {
        ERR("cannot create %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)", dir, strerror(errno));
        return NULL;
    }
    cr->ERR_set_mark(); /* leave the host's OpenSSL error queue as it was */
    lr_issuer_t *is = persistent(cr, dir, err, errcap);
    cr->ERR_pop_to_mark();
    return is;
}
