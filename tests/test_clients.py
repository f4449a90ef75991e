"""Stock HTTP clients of other languages, unmodified, at the provider's default https:// URL,
inside an empty network namespace: PHP (ext/curl, loaded with RTLD_DEEPBIND, and Guzzle), Ruby
Net::HTTP (the system OpenSSL), Java (its own TLS and trust store) and wget (GnuTLS)."""
import base64, json, os, subprocess, tempfile
from lib import *

CLIENTS = os.path.join(ROOT, "tests", "clients")
URL = "https://api.openai.com/v1/chat/completions"
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
           "JAVA_TOOL_OPTIONS")
PACE_MS = 40
JAVA_SRC = os.path.join(CLIENTS, "JavaClient.java")
JAVA_OUT = os.path.join(BUILD, "tests", "java")


def _java(*args):
    """The JDK client, compiled once (a single-file `java JavaClient.java` launch works too, but
    compiles on every run); C1 only: these JVMs live for one request."""
    cls = os.path.join(JAVA_OUT, "JavaClient.class")
    if not os.path.exists(cls) or os.stat(cls).st_mtime < os.stat(JAVA_SRC).st_mtime:
        os.makedirs(JAVA_OUT, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=JAVA_OUT)  # tests run in parallel: the class appears whole
        run(["javac", "-d", tmp, JAVA_SRC], check=True)
        os.replace(os.path.join(tmp, "JavaClient.class"), cls)
        rmtree(tmp)
    return ["java", "-XX:TieredStopAtLevel=1", "-cp", JAVA_OUT, "JavaClient"] + list(args)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k not in CA_VARS and k != "LD_PRELOAD"}
    env["LLMREPLAY_CACHE_DIR"] = CACHE
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _under_run(cmd, pace=PACE_MS, env=None, timeout=120, strict=False):
    """cmd under `llmreplay run -d seed` inside `unshare -rn`."""
    return run(["unshare", "-rn", CLI, "run", "-d", SEED_DIR, "--pace", str(pace)] + (["--strict"] if strict else []) +
               ["--"] + cmd, env=env or _env(), timeout=timeout)


def _preloaded(cmd, pace=PACE_MS, timeout=120):
    """cmd with only LD_PRELOAD and LLMREPLAY_DIR (no CA variable), inside `unshare -rn`."""
    return run(["unshare", "-rn"] + cmd, env=_env(LD_PRELOAD=LIB, LLMREPLAY_DIR=SEED_DIR, LLMREPLAY_PACE_MS=pace),
               timeout=timeout)


def _check_stream(r, what, incremental=True):
    """The client's JSON report: the seed's answer, byte for byte, arriving event by event."""
    assert r.returncode == 0, (what, r.returncode, r.stderr.decode(errors="replace")[-2000:])
    got = json.loads(r.stdout.decode().strip().splitlines()[-1])
    status, ctype, evs = expected(load(SEED))
    want = "".join(e for e in evs if e is not None).encode()
    body = base64.b64decode(got["body"])
    assert (got["status"], got["ctype"], body) == (status, ctype, want), (what, got["status"], got["ctype"], body[:300])
    n = len(evs)
    if not incremental:
        return
    # paced: the first event well before the last (half the stream's pacing, as a slow JVM start under load
    # may deliver the first few events together)
    assert got["reads"] >= n // 2 and got["t_last"] - got["t_first"] >= PACE_MS / 1000 * (n // 2), (what, got["reads"], got["t_first"], got["t_last"])


def _body():
    return request_body(load(SEED))


def test_php_ext_curl_and_guzzle_stream_under_run():
    """PHP's ext/curl (a write callback) and Guzzle (stream => true: PHP's own sockets and OpenSSL;
    and its default, ext/curl's easy and multi interfaces) answer under `llmreplay run`."""
    for mode in ("curl", "guzzle_stream", "guzzle", "guzzle_async"):
        r = _under_run(["php", os.path.join(CLIENTS, "php_client.php"), mode, URL, _body()])
        _check_stream(r, mode, incremental=mode in ("curl", "guzzle_stream"))  # Guzzle buffers otherwise


def test_php_preloaded_only_needs_no_ca():
    """ext/curl, bound to libcurl with RTLD_DEEPBIND, reaches the hooks: no CA variable needed."""
    for mode in ("curl", "guzzle_stream"):
        _check_stream(_preloaded(["php", os.path.join(CLIENTS, "php_client.php"), mode, URL, _body()]), mode)


def test_ruby_net_http_preloaded_only_needs_no_ca():
    """Ruby's openssl ext makes its SSL from a generic TLS_method() context (a server until
    SSL_connect) and drives SSL_connect non-blocking: the session is taken over, no CA trusted."""
    r = _preloaded(["ruby", os.path.join(CLIENTS, "ruby_client.rb"), URL, _body()])
    _check_stream(r, "ruby")
    assert b"llmreplay" not in r.stderr, r.stderr[-2000:]





def _java_opts(stderr):
    """The JAVA_TOOL_OPTIONS the JVM picked up (it says so on stderr)."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("Picked up JAVA_TOOL_OPTIONS: "):
            return line.split(": ", 1)[1]
    return ""


def test_java_httpclient_and_urlconnection_under_run():
    """The JDK's own TLS trusts llmreplay's CA under `llmreplay run`: a PKCS12 store of the JDK's
    cacerts plus the CA, made once with keytool, named in JAVA_TOOL_OPTIONS."""
    for mode in ("httpclient", "urlconnection"):
        r = _under_run(_java(mode, URL, _body()))
        _check_stream(r, mode)
        assert "-Djavax.net.ssl.trustStore=" + CACHE in _java_opts(r.stderr), r.stderr[-2000:]
    store = [f for f in os.listdir(CACHE) if f.startswith("java-trust-")]
    assert len(store) == 1, store
    before = os.stat(os.path.join(CACHE, store[0])).st_mtime_ns
    run(["unshare", "-rn", CLI, "run", "-d", SEED_DIR, "--", "true"], env=_env(), check=True)
    assert os.stat(os.path.join(CACHE, store[0])).st_mtime_ns == before  # up to date: not rebuilt


def test_java_keeps_the_trust_store_the_user_set():
    """A trustStore already in JAVA_TOOL_OPTIONS is copied with the CA added: its entries stay."""
    tmp = tmpdir()
    try:
        user = os.path.join(tmp, "user.jks")
        subprocess.run(["keytool", "-genkeypair", "-alias", "mine", "-dname", "CN=mine", "-keyalg", "EC",
                        "-keystore", user, "-storepass", "secret1", "-storetype", "JKS"], check=True, capture_output=True)
        opts = f"-Djavax.net.ssl.trustStore={user} -Djavax.net.ssl.trustStorePassword=secret1"
        env = _env(JAVA_TOOL_OPTIONS=opts, LLMREPLAY_CACHE_DIR=os.path.join(tmp, "cache"))
        r = _under_run(_java("httpclient", URL, _body()), env=env)
        _check_stream(r, "httpclient with the user's store")
        picked = _java_opts(r.stderr)
        assert picked.startswith(opts + " ") and "trustStore=" + os.path.join(tmp, "cache") in picked, picked
        store = picked.split("-Djavax.net.ssl.trustStore=")[-1].split()[0]
        ls = run(["keytool", "-list", "-keystore", store, "-storepass", "changeit"], check=True).stdout.decode()
        assert "mine," in ls and "llmreplay-ca," in ls, ls
    finally:
        rmtree(tmp)


def test_wget_gnutls_is_told_its_ca_option_and_works_with_it():
    """wget's GnuTLS ignores SSL_CERT_FILE: at each terminated connection llmreplay names the flag;
    with that flag, the answer streams."""
    cmd = ["wget", "-O", "-", "--header", "Content-Type: application/json", "--post-data", _body(), URL]
    ca = run([CLI, "ca"], env=_env(), check=True).stdout.decode().strip()
    r = _under_run(cmd, pace=0)
    hint = f"llmreplay: wget's TLS (GnuTLS) to api.openai.com is terminated with llmreplay's CA, which GnuTLS does " \
           f"not take from SSL_CERT_FILE: run wget --ca-certificate={ca}"
    lines = r.stderr.decode().splitlines()
    assert r.returncode != 0 and lines.count(hint) == 1, r.stderr.decode()[-2000:]
    r = _under_run(cmd[:1] + ["--ca-certificate=" + ca] + cmd[1:], pace=0)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    status, ctype, evs = expected(load(SEED))
    assert r.stdout == "".join(e for e in evs if e is not None).encode(), r.stdout[:300]
    assert r.stderr.decode().splitlines().count(hint) == 1  # every time


def test_misses_are_404_and_counted_by_strict_in_every_client():
    """A request with no recording gets the documented 404 through each path (DEEPBIND'd ext/curl,
    PHP's stream wrapper, Ruby's OpenSSL, Java's terminated TLS), and --strict counts it."""
    body = json.loads(_body())
    body["messages"][0]["content"] = "a question nobody recorded"
    body = json.dumps(body)
    for cmd in (["php", os.path.join(CLIENTS, "php_client.php"), "curl", URL, body],
                ["php", os.path.join(CLIENTS, "php_client.php"), "guzzle_stream", URL, body],
                ["ruby", os.path.join(CLIENTS, "ruby_client.rb"), URL, body],
                _java("httpclient", URL, body)):
        r = _under_run(cmd, pace=0, strict=True)
        got = json.loads(r.stdout.decode().strip().splitlines()[-1])
        assert got["status"] == 404 and b"no recording" in base64.b64decode(got["body"]).lower(), (cmd[1:3], got)
        assert r.returncode == 3 and b"--strict: 1 request had no recording" in r.stderr, (cmd[1:3], r.stderr[-1500:])


def test_java_outside_run_is_told_what_to_do():
    """Preloaded only, the JDK rejects the CA (its own trust store): llmreplay says to use run."""
    r = _preloaded(_java("httpclient", URL, _body()), pace=0)
    assert r.returncode != 0 and b"llmreplay: Java's TLS to api.openai.com is terminated with llmreplay's CA, which " \
        b"the JDK trusts only from its own trust store: run it under `llmreplay run`" in r.stderr, r.stderr[-2000:]
    # under run, with the trust store taken away: the hint no longer says "use `llmreplay run`"
    r = _under_run(["env", "-u", "JAVA_TOOL_OPTIONS"] + _java("httpclient", URL, _body()), pace=0)
    assert r.returncode != 0 and b"which `llmreplay run` exported in NODE_EXTRA_CA_CERTS, SSL_CERT_FILE and " \
        b"JAVA_TOOL_OPTIONS" in r.stderr and b"use `llmreplay run`" not in r.stderr, r.stderr[-2000:]


def test_generic_tls_method_client_is_taken_over():
    """The family Ruby belongs to, in C: TLS_method() context, SSL_set_fd, non-blocking SSL_connect."""
    cmd = ["unshare", "-rn", os.path.join(TESTS, "tls_generic"), "api.openai.com", "443", "/v1/chat/completions", _body()]
    env = _env(LD_PRELOAD=LIB, LLMREPLAY_DIR=SEED_DIR)
    for e in (env, asan_env(env)):
        r = run(cmd, env=e, timeout=60)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        out = json.loads(r.stdout)
        assert out["server_before"] == 1 and out["server_after"] == 0 and out["verify"] == 0, out
        assert out["status"] == "HTTP/1.1 200 OK" and out["total"] > 8000, out
        assert b"AddressSanitizer" not in r.stderr and b"runtime error" not in r.stderr, r.stderr[-2000:]


def test_library_loaded_with_deepbind_reaches_the_socket_and_tls_layers():
    """libcurl dlopen()ed with RTLD_DEEPBIND and driven through ctypes (dlsym: no libcurl layer):
    its own getaddrinfo, connect and SSL_* calls are rebound to the hooks."""
    r = _preloaded([PY, os.path.join(CLIENTS, "ctypes_deepbind.py"), URL, _body()], pace=0)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    status, ctype, evs = expected(load(SEED))
    assert r.stdout == "".join(e for e in evs if e is not None).encode(), r.stdout[:300]
