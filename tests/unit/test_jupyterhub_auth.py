"""The Hub's password file and the command that sets it (roles/jupyterhub/files/argoeks_jupyterhub_auth.py).

The authenticator class itself is exercised by the standalone platform test (a login with the generated password
gets a session, a wrong one is refused); here: the hashes, the file, and the command the role runs.
"""

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.support import ROOT

SCRIPT = ROOT / "roles" / "jupyterhub" / "files" / "argoeks_jupyterhub_auth.py"
_spec = importlib.util.spec_from_file_location("argoeks_jupyterhub_auth", SCRIPT)
auth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(auth)


def cli(*args, stdin=""):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_hash_verifies_its_password_only():
    stored = auth.hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert "correct horse battery" not in stored
    assert auth.verify_password("correct horse battery", stored)
    assert not auth.verify_password("correct horse battery ", stored)
    assert not auth.verify_password("", stored)


def test_hashes_are_salted():
    assert auth.hash_password("same") != auth.hash_password("same")


@pytest.mark.parametrize("stored", ["", "plain", "md5$x$y$z$a$b", "scrypt$16384$8$1$notbase64$!!", None])
def test_a_malformed_entry_verifies_nothing(stored):
    assert not auth.verify_password("anything", stored)


def test_set_is_idempotent_and_the_file_is_private(tmp_path):
    path = tmp_path / "passwords.json"
    assert auth.set_password(path, "alice", "first-password") is True
    first = json.loads(path.read_text())["alice"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert auth.set_password(path, "alice", "first-password") is False, "the same password changes nothing"
    assert json.loads(path.read_text())["alice"] == first
    assert auth.set_password(path, "alice", "second-password") is True
    assert auth.verify_password("second-password", json.loads(path.read_text())["alice"])
    assert not list(tmp_path.glob(".passwords-*")), "no temporary file is left behind"


def test_dry_run_reports_without_writing(tmp_path):
    path = tmp_path / "passwords.json"
    assert auth.set_password(path, "bob", "a-password", dry_run=True) is True
    assert not path.exists()
    auth.set_password(path, "bob", "a-password")
    assert auth.remove_user(path, "bob", dry_run=True) is True
    assert "bob" in json.loads(path.read_text())


def test_remove_drops_only_that_account(tmp_path):
    path = tmp_path / "passwords.json"
    auth.set_password(path, "alice", "alice-password")
    auth.set_password(path, "bob", "bob-password")
    assert auth.remove_user(path, "alice") is True
    assert auth.remove_user(path, "alice") is False
    assert list(json.loads(path.read_text())) == ["bob"]


def test_the_command_takes_the_password_on_stdin_and_reports_changes(tmp_path):
    path = str(tmp_path / "passwords.json")
    first = cli("set", "--file", path, "--user", "carol", stdin="s3cret-on-stdin\n")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"changed": True}
    assert "s3cret-on-stdin" not in first.stdout + first.stderr
    again = cli("set", "--file", path, "--user", "carol", stdin="s3cret-on-stdin\n")
    assert json.loads(again.stdout) == {"changed": False}
    checked = cli("set", "--file", path, "--user", "carol", "--check-mode", stdin="another\n")
    assert json.loads(checked.stdout) == {"changed": True}
    assert cli("check", "--file", path, "--user", "carol", stdin="s3cret-on-stdin\n").returncode == 0
    assert cli("check", "--file", path, "--user", "carol", stdin="another\n").returncode == 1
    assert json.loads(cli("remove", "--file", path, "--user", "carol").stdout) == {"changed": True}
    assert cli("check", "--file", path, "--user", "carol", stdin="s3cret-on-stdin\n").returncode == 1


def test_the_command_refuses_an_empty_password(tmp_path):
    result = cli("set", "--file", str(tmp_path / "p.json"), "--user", "dave", stdin="\n")
    assert result.returncode == 2 and "no password on stdin" in result.stderr
    assert not (tmp_path / "p.json").exists()
