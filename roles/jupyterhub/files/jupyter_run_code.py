"""Runs Python code in a new kernel of a user's Jupyter server, through the Hub's proxy.

Talks the Jupyter server REST API (create and delete the kernel) and the kernel's websocket (the
Jupyter messaging protocol: execute_request, then stream and execute_reply). The API token comes from
the environment (JUPYTERHUB_API_TOKEN), never from the command line. With --login the user's side is
played instead: log in with the password read from stdin (the Hub's login form), take a token of the
user's own, start the user's server and wait until it is ready, then run the code as the user.
Prints one JSON line.
"""

import argparse
import http.cookiejar
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from tornado import httpclient, ioloop, websocket


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _request(url, **kwargs):
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    return urllib.request.Request(url, **kwargs)  # noqa: S310 - http(s) only, checked above


def _open(opener, request):
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def user_session(url, user, password, start_timeout):
    """Log in, take a token of the user's own and start the user's server: what a newcomer does in the browser."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    hub = url.rstrip("/") + "/hub"
    _open(opener, _request(f"{hub}/login"))
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
    status, _ = _open(opener, _request(f"{hub}/login", data=form))
    if status != 302 or not any(c.name == "jupyterhub-hub-login" for c in jar):
        raise SystemExit(json.dumps({"status": "login-failed", "http": status}))
    # The Hub's API accepts the session cookie with the XSRF token in a header (as JupyterLab sends it);
    # the login renewed the token.
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), xsrf)
    headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"}
    body = json.dumps({"note": "onboarding check", "expires_in": 900}).encode()
    status, answer = _open(opener, _request(f"{hub}/api/users/{user}/tokens", data=body, headers=headers))
    if status != 201:
        raise SystemExit(json.dumps({"status": "token-failed", "http": status}))
    token = json.loads(answer)["token"]
    auth = {"Authorization": f"token {token}"}
    started = time.monotonic()
    status, _ = _open(opener, _request(f"{hub}/api/users/{user}/server", method="POST", headers=auth))
    if status not in (201, 202, 400):  # 400: already running
        raise SystemExit(json.dumps({"status": "spawn-failed", "http": status}))
    while True:
        status, answer = _open(opener, _request(f"{hub}/api/users/{user}", headers=auth))
        if status == 200 and (json.loads(answer)["servers"].get("") or {}).get("ready"):
            break
        if time.monotonic() - started > start_timeout:
            raise SystemExit(json.dumps({"status": "spawn-timeout", "seconds": start_timeout}))
        time.sleep(0.5)
    return token, round(time.monotonic() - started, 1)


def message(session, msg_type, content):
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": session,
            "username": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


async def run(args, token):
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    client = httpclient.AsyncHTTPClient()
    server = f"{args.url.rstrip('/')}/user/{args.user}/api"
    body = json.dumps({"name": args.kernel} if args.kernel else {})
    reply = await client.fetch(f"{server}/kernels", method="POST", headers=headers, body=body, request_timeout=120)
    kernel = json.loads(reply.body)
    result = {"kernel": kernel["name"], "stdout": "", "stderr": "", "status": None}
    try:
        ws_url = server.replace("http", "ws", 1) + f"/kernels/{kernel['id']}/channels"
        request = httpclient.HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}, request_timeout=120)
        conn = await websocket.websocket_connect(request)
        session = uuid.uuid4().hex
        execute = message(
            session,
            "execute_request",
            {
                "code": args.code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        await conn.write_message(json.dumps(execute))
        while True:
            raw = await conn.read_message()
            if raw is None:
                raise RuntimeError("the kernel's websocket closed before the reply")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != execute["header"]["msg_id"]:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                result[content["name"]] += content["text"]
            elif kind == "error":
                result["stderr"] += (
                    "\n".join(content.get("traceback", [])) or f"{content['ename']}: {content['evalue']}"
                )
            elif kind == "execute_reply" and msg["channel"] == "shell":
                result["status"] = content["status"]
                break
        conn.close()
    finally:
        await client.fetch(f"{server}/kernels/{kernel['id']}", method="DELETE", headers=headers, request_timeout=60)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the Hub's public URL")
    parser.add_argument("--user", required=True)
    parser.add_argument("--kernel", default="", help="kernel name; empty: the server's default")
    parser.add_argument("--code", required=True)
    parser.add_argument(
        "--login", action="store_true", help="log in as the user (password on stdin) and start the server"
    )
    parser.add_argument("--start-timeout", type=int, default=120)
    args = parser.parse_args()
    server_start = None
    if args.login:
        token, server_start = user_session(args.url, args.user, sys.stdin.readline().rstrip("\n"), args.start_timeout)
    else:
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not token:
        sys.exit("JUPYTERHUB_API_TOKEN is not set")
    result = ioloop.IOLoop.current().run_sync(lambda: run(args, token), timeout=600)
    result["server_start_seconds"] = server_start
    print(json.dumps(result))
    sys.exit(0 if result["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
