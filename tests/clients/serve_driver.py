#!/usr/bin/python3
"""Starts `llmreplay serve ARGS --listen 127.0.0.1:0`, runs a shell command with $SERVE set to
the address it printed, stops the server with SIGTERM and prints one JSON line: the command's
rc/stdout/stderr and the server's rc/stdout/stderr. Meant to run inside `unshare -rn` (it
brings lo up itself when asked: --lo).

With --fake, tests/fake_upstream.py is started first and {FAKE} in SERVE_ARGS and in the
environment (and $FAKE in the command) is its port.

usage: serve_driver.py [--lo] [--fake] CLI 'SHELL COMMAND' SERVE_ARGS..."""
import json, os, re, signal, subprocess, sys

args = sys.argv[1:]
if args[0] == "--lo":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    args = args[1:]
fake = None
if args[0] == "--fake":
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fake = subprocess.Popen([sys.executable, os.path.join(here, "fake_upstream.py")], stdout=subprocess.PIPE)
    port = fake.stdout.readline().decode().strip()
    os.environ["FAKE"] = port
    for k, v in list(os.environ.items()):  # e.g. LLMREPLAY_HOSTS=127.0.0.1:{FAKE}
        os.environ[k] = v.replace("{FAKE}", port)
    args = args[1:]
cli, cmd, serve_args = args[0], args[1], [a.replace("{FAKE}", os.environ.get("FAKE", "")) for a in args[2:]]
srv = subprocess.Popen([cli, "serve", "--listen", "127.0.0.1:0"] + serve_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
line = srv.stdout.readline().decode()
m = re.search(r"http://([0-9.]+:[0-9]+)", line)
out = {"banner": line}
if m:
    env = dict(os.environ, SERVE=m.group(1))
    r = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, timeout=120)
    out.update(rc=r.returncode, out=r.stdout.decode(errors="replace"), err=r.stderr.decode(errors="replace"))
srv.send_signal(signal.SIGTERM)
so, se = srv.communicate(timeout=30)
out.update(serve_rc=srv.returncode, serve_out=so.decode(errors="replace"), serve_err=se.decode(errors="replace"))
if fake:
    fake.kill()
    fake.wait()
print(json.dumps(out))
