"""The layer rules of shim/ (scripts/check-layers.sh): the tree passes, and a deliberate
upward include, a sideways include between hook layers and an include naming no layer are
each caught."""
import os, shutil, subprocess
from lib import ROOT, BUILD, tmpdir

SCRIPT = os.path.join(ROOT, "scripts", "check-layers.sh")


def check(shim):
    env = dict(os.environ, LR_SHIM_DIR=shim)
    return subprocess.run([SCRIPT, BUILD], env=env, capture_output=True, text=True)


def test_tree_follows_the_layer_rules():
    r = check(os.path.join(ROOT, "shim"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_includes_are_caught():
    tmp = tmpdir()
    try:
        for bad, what in [("base/log.h", '#include "engine/engine.h"\n'),   # upward
                          ("sock/hook_dns.c", '#include "tls/tls_layer.h"\n'),  # between hook layers
                          ("engine/match.c", '#include "store.h"\n')]:       # no layer named
            shim = os.path.join(tmp, "shim")
            shutil.rmtree(shim, ignore_errors=True)
            shutil.copytree(os.path.join(ROOT, "shim"), shim)
            with open(os.path.join(shim, bad), "a") as f:
                f.write(what)
            r = check(shim)
            assert r.returncode == 1 and bad in r.stdout, (bad, r.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
