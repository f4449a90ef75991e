"""The llmreplay command: run (with --strict), ls, check, explain, --help and --version."""
import json, os
from lib import *

URL = "http://localhost:8000/v1/chat/completions"


def _env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("LLMREPLAY_") and k != "LD_PRELOAD"}
    e["LLMREPLAY_CACHE_DIR"] = CACHE
    e.update({k: str(v) for k, v in extra.items()})
    return e


def test_help_and_version_everywhere():
    for sub in ([], ["run"], ["ls"], ["check"], ["explain"], ["ca"]):
        h = run([CLI] + sub + ["--help"], env=_env(), check=True).stdout.decode()
        assert h.startswith("usage: llmreplay"), (sub, h)
        v = run([CLI] + sub + ["--version"], env=_env(), check=True).stdout.decode()
        assert v.startswith("llmreplay "), (sub, v)
    assert run([CLI, "bogus"], env=_env()).returncode == 2


def test_run_replays_and_keeps_ld_preload():
    body = request_body(load(SEED))
    r = run([CLI, "run", "-d", SEED_DIR, "--", "curl", "-sS", URL, "-d", body], env=_env(), check=True)
    assert r.stdout.endswith(b"data: [DONE]\n\n")
    r = run([CLI, "run", "-d", SEED_DIR, "--", "sh", "-c", "echo $LD_PRELOAD; echo $LLMREPLAY_DIR"],
            env=_env(LD_PRELOAD="libm.so.6"), check=True)
    pre, d = r.stdout.decode().splitlines()
    assert pre.split()[0] == "libm.so.6" and pre.split()[1].endswith("libllmreplay.so"), pre
    assert d == os.path.realpath(SEED_DIR)


def test_run_exit_status_passes_through():
    assert run([CLI, "run", "-d", SEED_DIR, "--", "sh", "-c", "exit 7"], env=_env()).returncode == 7
    r = run([CLI, "run", "-d", SEED_DIR, "--", "no-such-program-xyz"], env=_env())
    assert r.returncode == 127 and b"cannot run no-such-program-xyz" in r.stderr


def test_strict_fails_when_a_miss_was_swallowed():
    swallow = ["sh", "-c", f"curl -s -o /dev/null {URL} -d '{{\"model\":\"m\"}}'; exit 0"]
    assert run([CLI, "run", "-d", SEED_DIR, "--"] + swallow, env=_env()).returncode == 0
    r = run([CLI, "run", "-d", SEED_DIR, "--strict", "--"] + swallow, env=_env())
    assert r.returncode == 3 and b"--strict: 1 request had no recording" in r.stderr, r.stderr
    hit = ["curl", "-s", "-o", "/dev/null", URL, "-d", request_body(load(SEED))]
    assert run([CLI, "run", "-d", SEED_DIR, "--strict", "--"] + hit, env=_env()).returncode == 0


def test_run_warns_about_static_binaries():
    tmp = tmpdir()
    try:
        src, exe = os.path.join(tmp, "s.c"), os.path.join(tmp, "static_prog")
        with open(src, "w") as f:
            f.write("int main(void){return 0;}\n")
        if run(["cc", "-static", "-o", exe, src]).returncode != 0:
            print("SKIP: no static libc here")
            return
        r = run([CLI, "run", "-d", SEED_DIR, "--", exe], env=_env())
        assert r.returncode == 0 and b"statically linked" in r.stderr, r.stderr
    finally:
        rmtree(tmp)


def test_ls_lines():
    r = run([CLI, "ls", EXAMPLES], env=_env(), check=True)
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(os.listdir(EXAMPLES))
    stream = next(l for l in lines if "openai-chat-stream.json" in l)
    assert stream.split()[:4] == ["/v1/chat/completions", "gpt-4o-mini", "stream", "200"], stream
    assert '"Hello! I\'m a recorded answer, replayed by llmreplay."' in stream
    err = next(l for l in lines if "rate-limit" in l)
    assert " 429 " in err and "Rate limit reached" in err
    models = run([CLI, "ls", "-d", CORPUS], env=_env(), check=True).stdout.decode()
    assert "[" in models and "models]" in models and "embeddings of 384 dims]" in models


def test_check_clean_and_env_dirs():
    r = run([CLI, "check"], env=_env(LLMREPLAY_DIR=f"{EXAMPLES}:{SEED_DIR}"), check=True)
    assert r.stdout.decode().strip().endswith("0 problems, 0 unsupported"), r.stdout
    r = run([CLI, "check", CORPUS], env=_env(), check=True)
    assert r.stdout.decode().startswith(f"{len(corpus_files())} recordings"), r.stdout
    assert run([CLI, "check"], env=_env()).returncode == 2  # no directory at all


def test_explain_match_miss_and_inputs():
    r = run([CLI, "explain", "-d", SEED_DIR, SEED], env=_env())
    assert r.returncode == 0 and r.stdout.decode().strip() == f"match: {SEED}", r.stdout
    rec = load(SEED)
    rec["request"]["body"]["temperature"] = 0.5
    r = run([CLI, "explain", "-d", SEED_DIR, "-"], env=_env(), input=json.dumps(rec).encode())
    out = r.stdout.decode()
    assert r.returncode == 1 and "first difference at temperature" in out and SEED in out, out
    r = run([CLI, "explain", "-d", SEED_DIR, "--endpoint", "/v1/chat/completions", "-"], env=_env(),
            input=json.dumps(load(SEED)["request"]["body"]).encode())
    assert r.returncode == 0, r.stdout
    tmp = tmpdir()
    try:  # a line of the miss log explains the miss it recorded
        log = os.path.join(tmp, "m.jsonl")
        run(["curl", "-s", "-o", "/dev/null", URL, "-d", json.dumps(rec["request"]["body"])],
            env=shim_env(SEED_DIR, LLMREPLAY_MISS_LOG=log, LLMREPLAY_LOG="quiet"), check=True)
        r = run([CLI, "explain", "-d", SEED_DIR, log], env=_env())
        assert r.returncode == 1 and "temperature" in r.stdout.decode(), r.stdout
        with open(os.path.join(tmp, "bad.json"), "w") as f:
            f.write("{")
        assert run([CLI, "explain", "-d", SEED_DIR, os.path.join(tmp, "bad.json")], env=_env()).returncode == 2
    finally:
        rmtree(tmp)


def test_unused_shim_loads_nothing():
    """A process that never calls an LLM: no libcurl, no libcjson, no index, no output."""
    code = "print(open('/proc/self/maps').read())"
    r = run([PY, "-c", code], env=shim_env(CORPUS, LLMREPLAY_LOG="debug"), check=True)
    maps = r.stdout.decode()
    assert "libllmreplay.so" in maps
    assert "libcurl" not in maps and "libcjson" not in maps, maps
    assert "libssl" not in maps and "libcrypto" not in maps, maps
    assert r.stderr == b"", r.stderr


def test_make_demo_script():
    r = run(["sh", os.path.join(ROOT, "scripts", "demo.sh")], env=_env(), timeout=120, check=True)
    out = r.stdout.decode()
    # curl CLI, C program, Python requests over HTTPS, the npm openai SDK over terminated TLS
    assert out.count("Hello! I'm a recorded answer, replayed by llmreplay.\n") == 4, out
    assert "no recording matches" in out


def _one_error(r, *parts):
    """Exit 2 and one stderr line starting "llmreplay: " that holds every part."""
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("llmreplay: "), (r.returncode, lines)
    for p in parts:
        assert p in lines[0], (p, lines)
    return lines[0]


def test_config_prints_each_setting_and_its_source():
    assert run([CLI, "--help"], env=_env(), check=True).stdout.decode().count("config") >= 1
    h = run([CLI, "config", "--help"], env=_env(), check=True).stdout.decode()
    assert h.startswith("usage: llmreplay config") and "environment" in h and "invalid" in h, h
    r = run([CLI, "config"], env=_env(LLMREPLAY_LOG="debug", LLMREPLAY_PACE_MS="50ms", LLMREPLAY_DIR=f"{SEED_DIR}:/x",
                                      LLMREPLAY_DIRS="typo"), check=True)
    rows = {l.split()[0]: l for l in r.stdout.decode().splitlines()}
    assert rows["LLMREPLAY_LOG"].split()[1:] == ["environment", "debug"], rows["LLMREPLAY_LOG"]
    assert rows["LLMREPLAY_MODE"].split()[1:] == ["default", "replay"], rows["LLMREPLAY_MODE"]
    pace = rows["LLMREPLAY_PACE_MS"]
    assert pace.split()[1:3] == ["invalid", "0"] and "LLMREPLAY_PACE_MS=50ms is not valid" in pace, pace
    assert rows["LLMREPLAY_RECORD_DIR"].split()[1:3] == ["default", SEED_DIR], rows["LLMREPLAY_RECORD_DIR"]
    assert rows["LLMREPLAY_CACHE_DIR"].split()[1:3] == ["environment", CACHE], rows["LLMREPLAY_CACHE_DIR"]
    assert rows["LLMREPLAY_DIRS"].split()[1:3] == ["unknown", "typo"], rows["LLMREPLAY_DIRS"]
    assert "LLMREPLAY__STRICT_FILE" not in rows
    # aligned: the source and the value start in the same column on every line
    cols = {(l.index(l.split()[1]), l.index(l.split()[2], 27)) for l in rows.values()}
    assert len(cols) == 1, cols
    err = r.stderr.decode().splitlines()  # the config module's one warning
    assert len(err) == 1 and "LLMREPLAY_PACE_MS=50ms is not valid" in err[0], err
    _one_error(run([CLI, "config", "extra"], env=_env()), "config takes no arguments")


def test_run_refuses_bad_option_values_before_running():
    tmp = tmpdir()
    try:
        marker = os.path.join(tmp, "ran")
        cmd = ["--", "touch", marker]
        for args, parts in ((["--pace", "abc"], ["--pace abc", "accepted: milliseconds"]),
                            (["--pace", "50ms"], ["--pace 50ms", "accepted: milliseconds"]),
                            (["--pace=-1"], ["--pace -1", "accepted: milliseconds"]),
                            (["--mode", "fast"], ["--mode fast", "record-if-missing"]),
                            (["--pace"], ["--pace needs a value"]),
                            (["--mode"], ["--mode needs a value"])):
            _one_error(run([CLI, "run", "-d", SEED_DIR] + args + cmd, env=_env()), *parts)
            assert not os.path.exists(marker), args
        show = ["--", "sh", "-c", "echo $LLMREPLAY_PACE_MS $LLMREPLAY_IGNORE $LLMREPLAY_MODE"]
        r = run([CLI, "run", "-d", SEED_DIR, "--pace", "2.5", "--ignore", "user,seed", "--mode=replay"] + show,
                env=_env(), check=True)
        assert r.stdout.decode().split() == ["2.5", "user,seed", "replay"], r.stdout
        r = run([CLI, "run", "--dir", SEED_DIR, "--pace=0", "--ignore="] + show, env=_env(), check=True)
        assert r.stdout.decode().split() == ["0"], r.stdout
    finally:
        rmtree(tmp)


def test_dir_option_forms_and_missing_directories():
    tmp = tmpdir()
    try:
        marker, missing = os.path.join(tmp, "ran"), os.path.join(tmp, "no-such-dir")
        cmds = {"ls": [], "check": [], "index": [], "explain": [SEED],
                "run": ["--", "sh", "-c", f"touch {marker}; test \"$LLMREPLAY_DIR\" = {os.path.realpath(SEED_DIR)}"]}
        for name, tail in cmds.items():
            for form in (["-d", SEED_DIR], ["--dir", SEED_DIR], [f"--dir={SEED_DIR}"]):
                r = run([CLI, name] + form + tail, env=_env())
                assert r.returncode == 0, (name, form, r.stdout[-300:], r.stderr[-300:])
            for form, msg in ((["-d"], "llmreplay: -d needs a directory"), (["--dir"], "llmreplay: --dir needs a directory"),
                              (["--dir="], "llmreplay: --dir= needs a directory")):
                assert _one_error(run([CLI, name] + form, env=_env()), msg).startswith(msg), (name, form)
            if name == "run":  # before --: "-d --" has no directory either
                _one_error(run([CLI, name, "-d"] + tail, env=_env()), "llmreplay: -d needs a directory")
            os.path.exists(marker) and os.unlink(marker)
            for form in (["-d", missing], [f"--dir={missing}"]):
                _one_error(run([CLI, name] + form + tail, env=_env()), f"llmreplay: {missing}: no such directory")
            assert not os.path.exists(marker), name  # refused before running anything
        _one_error(run([CLI, "ls", missing], env=_env()), f"llmreplay: {missing}: no such directory")
        _one_error(run([CLI, "check"], env=_env(LLMREPLAY_DIR=f"{SEED_DIR}:{missing}")), f"{missing}: no such directory")
        # recording creates its directory: no complaint there
        rec = os.path.join(tmp, "new-rec")
        assert run([CLI, "run", "--mode", "record", "-d", rec, "--", "true"], env=_env()).returncode == 0
    finally:
        rmtree(tmp)


def test_bad_setting_is_warned_once_by_the_cli_and_its_child():
    warning = "LLMREPLAY_LOG=verbose is not valid (accepted: quiet, error, warn, info, debug); using warn"
    r = run([CLI, "ls", SEED_DIR], env=_env(LLMREPLAY_LOG="verbose"), check=True)
    assert r.stderr.decode().count(warning) == 1, r.stderr
    body = request_body(load(SEED))
    cmd = ["sh", "-c", f"curl -sS {URL} -d '{body}' >/dev/null && curl -sS {URL} -d '{body}'"]
    r = run([CLI, "run", "-d", SEED_DIR, "--"] + cmd, env=_env(LLMREPLAY_LOG="verbose"), check=True)
    assert r.stdout.endswith(b"data: [DONE]\n\n") and r.stderr.decode().count("LLMREPLAY_LOG=verbose") == 1, r.stderr
    r = run([CLI, "config"], env=_env(LLMREPLAY_LOG="verbose"), check=True)
    assert r.stderr.decode().count(warning) == 1, r.stderr
