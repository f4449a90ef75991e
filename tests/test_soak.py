"""A 20-second run of scripts/soak.sh (the full run is SOAK_S=300, outside the suite): every
client and layer at once, every answer checked, and the long-lived hosts' descriptors and RSS
sampled (RSS bound doubled here: 20 s leave V8 too little time to settle)."""
import os
from lib import ROOT, run


def test_soak_smoke_20s():
    env = dict(os.environ, SOAK_S="20", SOAK_RSS_GROWTH_MB="32")
    r = run([os.path.join(ROOT, "scripts", "soak.sh")], env=env, timeout=240)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out[-3000:] + r.stderr.decode(errors="replace")[-1500:]
    assert "soak: ok" in out and out.count(" 0 wrong;") == 2, out


STDERR_NOBODY_READS = r'''
import json, sys, requests
s = requests.Session()
for i in range(400):  # each distinct miss writes one line (~480 bytes) to stderr: 64 KiB fill the pipe
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"distinct miss {i}"}]})
    r = s.post("http://api.openai.com/v1/chat/completions", data=body, timeout=20)
    assert r.status_code == 404, r.status_code
print("done", flush=True)
'''


def test_a_full_stderr_pipe_never_stalls_the_responder():
    """Found by the soak: a host whose stderr is a pipe nobody reads (yet) stalled every socket
    connection once the responder thread's miss messages filled it (write(2) blocked)."""
    import subprocess, time
    from lib import PY, SEED_DIR, shim_env
    r_fd, w_fd = os.pipe()
    t0 = time.monotonic()
    p = subprocess.Popen([PY, "-c", STDERR_NOBODY_READS], env=shim_env(SEED_DIR), stdout=subprocess.PIPE,
                         stderr=w_fd, stdin=subprocess.DEVNULL)
    os.close(w_fd)
    try:
        out, _ = p.communicate(timeout=60)  # stderr is left unread until the end
    finally:
        p.kill()
        os.close(r_fd)
    assert p.returncode == 0 and out == b"done\n", (p.returncode, out)
    assert time.monotonic() - t0 < 30
