"""Password authentication for JupyterHub from a file of salted scrypt hashes, and the command that sets them.

The Hub loads `PasswordFileAuthenticator` (JupyterHub.authenticator_class). Only accounts with a
password in the file can log in; there is no self sign-up: the platform (or an admin running this
file's command) gives each account its password. The file is re-read when it changes, so adding a
user needs no restart. Repeated failures lock an account for a while (a brake on guessing).

    python argoeks_jupyterhub_auth.py set  --file FILE --user NAME   (password on stdin)
    python argoeks_jupyterhub_auth.py check --file FILE --user NAME  (password on stdin; exit 0 if it matches)
    python argoeks_jupyterhub_auth.py remove --file FILE --user NAME

`set` and `remove` print {"changed": bool}: setting the password a user already has changes nothing.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import tempfile
import time

# scrypt cost: ~50 ms and 16 MiB per check on a small host; stored with each hash, so it can be raised.
N, R, P = 2**14, 8, 1


def hash_password(password, salt=None, n=N, r=R, p=P):
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password, stored):
    if not isinstance(stored, str):
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(path, accounts):
    """Atomically, mode 0600: the file holds the hashes of every account."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".passwords-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(accounts, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def set_password(path, user, password, dry_run=False):
    accounts = load(path)
    if user in accounts and verify_password(password, accounts[user]):
        return False
    if not dry_run:
        accounts[user] = hash_password(password)
        save(path, accounts)
    return True


def remove_user(path, user, dry_run=False):
    accounts = load(path)
    if user not in accounts:
        return False
    if not dry_run:
        del accounts[user]
        save(path, accounts)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description="Set, check or remove a JupyterHub password in the password file.")
    parser.add_argument("action", choices=["set", "check", "remove"])
    parser.add_argument("--file", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--check-mode", action="store_true", help="report what would change, change nothing")
    args = parser.parse_args(argv)
    if args.action == "remove":
        print(json.dumps({"changed": remove_user(args.file, args.user, args.check_mode)}))
        return 0
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("no password on stdin", file=sys.stderr)
        return 2
    if args.action == "check":
        ok = verify_password(password, load(args.file).get(args.user, ""))
        print(json.dumps({"match": ok}))
        return 0 if ok else 1
    print(json.dumps({"changed": set_password(args.file, args.user, password, args.check_mode)}))
    return 0


try:  # the Hub's side; the command above needs no JupyterHub
    from jupyterhub.auth import Authenticator
    from traitlets import Integer, Unicode
except ImportError:  # pragma: no cover - only the command is used without JupyterHub
    Authenticator = None

if Authenticator is not None:

    class PasswordFileAuthenticator(Authenticator):
        """Accounts and their scrypt hashes from `password_file`; no sign-up."""

        password_file = Unicode(
            config=True, help="JSON file {username: scrypt hash}, written by this module's command."
        )
        max_failures = Integer(5, config=True, help="Failed logins in a row that lock an account.")
        lock_seconds = Integer(300, config=True, help="How long a locked account refuses every password.")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._accounts, self._mtime, self._failures = {}, None, {}

        def _current(self):
            try:
                mtime = os.stat(self.password_file).st_mtime_ns
            except FileNotFoundError:
                return {}
            if mtime != self._mtime:
                self._accounts, self._mtime = load(self.password_file), mtime
            return self._accounts

        async def authenticate(self, handler, data):
            username = self.normalize_username(data.get("username", ""))
            password = data.get("password", "")
            failures, since = self._failures.get(username, (0, 0.0))
            if failures >= self.max_failures and time.monotonic() - since < self.lock_seconds:
                self.log.warning("login refused for %s: locked after %d failed attempts", username, failures)
                return None
            stored = self._current().get(username)
            if stored and password and verify_password(password, stored):
                self._failures.pop(username, None)
                return username
            self._failures[username] = (failures + 1, time.monotonic())
            self.log.warning("failed login for %s", username)
            return None

        def delete_user(self, user):
            self._failures.pop(user.name, None)
            return super().delete_user(user)


if __name__ == "__main__":
    sys.exit(main())
