"""The generated server secret: written on first use, never by importing the settings; stable across restarts.

In a Django process the first use comes early: django-q2 reads SECRET_KEY while its app loads
(it signs the queued tasks with it), so django.setup() creates the file.
"""

import os
import subprocess
import sys

from tests.support.workers import REPO_ROOT

# One process of a fresh checkout: import the settings, say whether var/secret_key exists, then use the key.
PROGRAM = """
import os
from pathlib import Path
os.environ["DJANGO_SETTINGS_MODULE"] = "trama_project.settings"
import trama_project.settings
path = Path(os.environ["TRAMA_VAR_DIR"]) / "secret_key"
print(path.exists())
import django
django.setup()
from django.core import signing
print(signing.Signer().sign("hello"))  # no timestamp: the same key signs alike
print(path.exists(), oct(path.stat().st_mode & 0o777))
"""


def fresh_process(var_dir) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRAMA_SECRET_KEY"} | {"TRAMA_VAR_DIR": str(var_dir)}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_importing_settings_writes_no_key_and_the_first_use_generates_one_kept_across_restarts(tmp_path):
    before_use, signed, after_use = fresh_process(tmp_path)
    assert before_use == "False"  # importing the settings wrote nothing
    assert after_use == "True 0o600"
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    restarted = fresh_process(tmp_path)
    assert restarted == ["True", signed, "True 0o600"]  # same key: same signature
    assert (tmp_path / "secret_key").read_text() == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no temporary file left behind
