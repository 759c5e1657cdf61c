"""Phase 2 Weeks 6-7 (JupyterHub) on the standalone target, as a user sees it.

On the Phase 2 platform the Phase 2 modules share (tests/platform/conftest.py), after the pipelines module.
Bad settings fail in preflight and change nothing; phase2.yml limited to what the Hub needs (`--tags
postgresql,mlflow,jupyterhub`) changes nothing on a second run. An admin logs in with the generated password
and a wrong one is refused; a user's server runs the ML kernel, whose code reaches MLflow (the run shows in
MLflow's REST API) with the platform's settings preset; the idle culler runs as a Hub service with the
configured timeout; Prometheus scrapes the Hub; onboard_user.yml scripts a newcomer's path and verify.yml
reads its record; no password or token is printed; teardown keeps the users' notebooks unless asked.
"""

import http.cookiejar
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.platform.standalone import JUPYTERHUB_IDLE_TIMEOUT as IDLE_TIMEOUT
from tests.platform.standalone import assert_ok
from tests.support import wait_until

pytestmark = pytest.mark.platform

TAGS = "postgresql,mlflow,jupyterhub"


@pytest.fixture(scope="module")
def platform(shared_platform):
    return shared_platform


def hub_url(platform, path=""):
    url = f"http://127.0.0.1:{platform.vars['jupyterhub_port']}{path}"
    assert url.startswith("http://127.0.0.1:"), url
    return url


def secret(platform, name):
    return json.loads((platform.home / "secrets" / f"{name}.json").read_text())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login(platform, user, password):
    """POST /hub/login as the browser does (the form's XSRF cookie first): (status, cookie names)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    opener.open(hub_url(platform, "/hub/login"), timeout=30).close()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
    try:
        with opener.open(hub_url(platform, "/hub/login"), data=form, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, {c.name for c in jar}


def api(platform, path, method="GET", token=None):
    token = token or secret(platform, "jupyterhub")["api_token"]
    request = urllib.request.Request(  # noqa: S310 - loopback http only (asserted in hub_url)
        hub_url(platform, f"/hub/api{path}"), method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback http only (asserted)
        body = response.read()
    return json.loads(body) if body else None


def mlflow(platform, path):
    url = f"http://127.0.0.1:{platform.vars['mlflow_port']}{path}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def in_kernel(platform, user, code):
    """Code in a new kernel of the user's running server, through the Hub's proxy (the role's client)."""
    home = platform.home
    proc = subprocess.run(
        [
            str(home / "venvs/jupyterhub/bin/python"),
            str(Path(__file__).resolve().parents[2] / "roles/jupyterhub/files/jupyter_run_code.py"),
            "--url",
            hub_url(platform),
            "--user",
            user,
            "--code",
            code,
        ],
        env={"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": secret(platform, "jupyterhub")["api_token"]},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


# --- bring-up ------------------------------------------------------------------------------------
def test_a_bad_idle_timeout_fails_in_preflight_changing_nothing(platform):
    before = platform.footprint()
    result = platform.run("phase2.yml", "-e", "jupyterhub_idle_timeout=5")
    assert result.rc != 0
    text = " ".join(result.output.split())
    assert "jupyterhub_idle_timeout: '5' is out of range (accepted: a number >= 60)" in text, result.tail()
    assert "seconds before an idle server is stopped" in text
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert platform.footprint() == before


def test_the_hub_on_the_model_servers_port_fails_in_preflight_changing_nothing(platform):
    before = platform.footprint()
    taken = platform.vars["model_serving_port"]
    result = platform.run("phase2.yml", "-e", f"jupyterhub_port={taken}")
    assert result.rc != 0
    text = " ".join(result.output.split())
    clash = f"jupyterhub_port ({taken}), model_serving_port ({taken})"
    assert f"{clash}: the ports of the standalone services must differ" in text, result.tail()
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert platform.footprint() == before


def test_jupyterhub_is_up_and_a_rerun_of_its_tags_changes_nothing(platform):
    result = platform.run("phase2.yml", "--tags", TAGS, timed="phase2 postgresql,mlflow,jupyterhub (rerun)")
    assert_ok(result, f"phase2.yml --tags {TAGS}")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    summary = " ".join(result.output.split())
    assert f"JupyterHub: {hub_url(platform)} (admins admin" in summary
    assert platform.running(["jupyterhub", "jupyterhub-proxy"]), platform.ctl("status").stdout
    with urllib.request.urlopen(hub_url(platform, "/hub/health"), timeout=30) as response:  # noqa: S310
        assert response.status == 200


def test_the_hub_listens_on_loopback_only(platform):
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    for port in (platform.vars[p] for p in ("jupyterhub_port", "jupyterhub_hub_port", "jupyterhub_proxy_api_port")):
        local = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{port}")]
        assert local == [f"127.0.0.1:{port}"], (port, local)


def test_secrets_are_generated_and_private(platform):
    for name in ("jupyterhub", "jupyterhub-user-admin"):
        path = platform.home / "secrets" / f"{name}.json"
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert len(secret(platform, "jupyterhub-user-admin")["password"]) == 24
    passwords = platform.home / "jupyterhub" / "passwords.json"
    assert passwords.stat().st_mode & 0o777 == 0o600
    stored = json.loads(passwords.read_text())
    # (the shared platform's bring-up onboarded a user too: every account's entry is a hash)
    assert "admin" in stored and all(value.startswith("scrypt$") for value in stored.values()), list(stored)
    assert secret(platform, "jupyterhub-user-admin")["password"] not in passwords.read_text()


# --- logging in ----------------------------------------------------------------------------------
def test_the_admin_logs_in_with_the_generated_password_and_a_wrong_one_is_refused(platform):
    password = secret(platform, "jupyterhub-user-admin")["password"]
    status, cookies = login(platform, "admin", password)
    assert status == 302 and "jupyterhub-session-id" in cookies, (status, cookies)
    status, cookies = login(platform, "admin", password + "x")
    assert status == 403 and "jupyterhub-session-id" not in cookies
    status, _ = login(platform, "nobody", password)
    assert status == 403, "an unknown account is refused"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(hub_url(platform, "/hub/signup"), timeout=30)  # noqa: S310
    assert denied.value.code == 404, "there is no self sign-up"


def test_the_api_refuses_a_wrong_token(platform):
    with pytest.raises(urllib.error.HTTPError) as denied:
        api(platform, "/users", token="not-the-token")
    assert denied.value.code == 403


# --- a server, its kernel and MLflow ---------------------------------------------------------------
def test_a_users_kernel_has_the_ml_tools_and_logs_a_run_to_mlflow(platform):
    user = "kernel-test"
    api(platform, f"/users/{user}", method="POST")
    api(platform, f"/users/{user}/server", method="POST")
    wait_until(
        lambda: (api(platform, f"/users/{user}")["servers"].get("") or {}).get("ready"),
        timeout=180,
        what="the user's server",
    )
    code = (
        "import json, os, sys, mlflow, feast\n"
        "mlflow.set_experiment('jupyterhub-test')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_param('from', 'kernel')\n"
        "print(json.dumps({'run': run.info.run_id, 'python': sys.executable, 'feast': feast.__version__,\n"
        "    'env': {k: os.environ.get(k) for k in ('MLFLOW_TRACKING_URI', 'FEAST_FEATURE_SERVER_URL',\n"
        "    'FEAST_PROJECT', 'JUPYTERHUB_USER', 'HOME')}}))\n"
    )
    result = in_kernel(platform, user, code)
    assert result["kernel"] == "argoeks-ml", "the ML kernel is every server's default"
    printed = json.loads(result["stdout"].strip().splitlines()[-1])
    assert printed["python"] == str(platform.home / "venvs/jupyter-kernel/bin/python")
    assert printed["feast"] == "0.67.0"
    env = printed["env"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{platform.vars['mlflow_port']}"
    assert env["FEAST_FEATURE_SERVER_URL"] == f"http://127.0.0.1:{platform.vars['feast_server_port']}"
    assert env["FEAST_PROJECT"] == "mlops_dev" and env["JUPYTERHUB_USER"] == user
    assert env["HOME"] == str(platform.home / "data/jupyterhub/users" / user), "each user has a home of their own"
    run_info = mlflow(platform, f"/api/2.0/mlflow/runs/get?run_id={printed['run']}")["run"]
    assert run_info["info"]["status"] == "FINISHED"
    assert {"key": "from", "value": "kernel"} in run_info["data"]["params"]
    api(platform, f"/users/{user}/server", method="DELETE")
    wait_until(lambda: not api(platform, f"/users/{user}")["servers"], timeout=60, what="the server to stop")


def test_the_idle_culler_runs_with_the_timeout(platform):
    culler = api(platform, "/services")["idle-culler"]
    assert f"--timeout={IDLE_TIMEOUT}" in culler["command"]
    assert culler["pid"] > 0
    cmdline = Path(f"/proc/{culler['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"jupyterhub_idle_culler" in cmdline and f"--timeout={IDLE_TIMEOUT}".encode() in cmdline
    log = (platform.home / "logs" / "jupyterhub.log").read_text()
    assert "/hub/api/users?state=" in log and "(idle-culler@127.0.0.1)" in log, "the culler asks the Hub for servers"


def test_the_hubs_metrics_are_scraped(platform):
    with urllib.request.urlopen(hub_url(platform, "/hub/metrics"), timeout=30) as response:  # noqa: S310
        assert "jupyterhub_total_users" in response.read().decode()
    targets = yaml.safe_load((platform.home / "observability" / "targets" / "jupyterhub.yml").read_text())
    assert targets[0]["targets"] == [f"127.0.0.1:{platform.vars['jupyterhub_port']}"]

    def hub_target_up():
        with urllib.request.urlopen(platform.url("prometheus", "/api/v1/targets"), timeout=10) as response:  # noqa: S310
            active = json.loads(response.read())["data"]["activeTargets"]
        return any(t["labels"].get("job") == "jupyterhub" and t["health"] == "up" for t in active)

    wait_until(hub_target_up, timeout=120, interval=3, what="Prometheus scraping the jupyterhub target")


# Idempotence and check mode of this role: test_phase2_serving_standalone.py reruns site.yml, and runs it
# in check mode, on the whole platform (every service keeps its process).


# --- onboarding ----------------------------------------------------------------------------------
def test_the_onboarding_check_records_a_newcomers_path(platform):
    result = platform.run("onboard_user.yml", timed="onboard_user.yml")
    assert_ok(result, "onboard_user.yml")
    record = json.loads((platform.home / "records" / "onboarding.json").read_text())
    assert record["user"] == "onboarding-check"
    assert 0 < record["duration_seconds"] < 600
    assert "onboarding-check was onboarded in" in " ".join(result.output.split())
    run_info = mlflow(platform, f"/api/2.0/mlflow/runs/get?run_id={record['mlflow_run_id']}")["run"]
    assert run_info["info"]["status"] == "FINISHED"
    assert {"key": "jupyterhub.user", "value": "onboarding-check"} in run_info["data"]["tags"]
    user = api(platform, "/users/onboarding-check")
    assert user["servers"] == {}, "the check stops the server it started"
    password = secret(platform, "jupyterhub-user-onboarding-check")["password"]
    assert login(platform, "onboarding-check", password)[0] == 302, "the newcomer keeps a working login"

    again = platform.run("onboard_user.yml", timed="onboard_user.yml (again)")
    assert_ok(again, "onboard_user.yml again")
    assert (
        json.loads((platform.home / "records" / "onboarding.json").read_text())["mlflow_run_id"]
        != record["mlflow_run_id"]
    ), "every check onboards afresh"
    assert login(platform, "onboarding-check", password)[0] == 403, "the earlier account's password is gone"


def test_the_onboarding_check_never_reuses_someone_elses_account(platform):
    result = platform.run("onboard_user.yml", "-e", "onboard_user=kernel-test")
    assert result.rc != 0
    assert "user kernel-test exists already" in " ".join(result.output.split())


def test_verify_reports_developer_onboarding(platform):
    result = platform.run("verify.yml", "-e", '{"verify_phases": [2], "verify_warn_only": true}')
    assert_ok(result, "verify.yml")
    report = json.loads((platform.home / "reports" / "success-metrics.json").read_text())
    onboarding = next(r for r in report["results"] if r["metric"] == "developer_onboarding")
    recorded = json.loads((platform.home / "records" / "onboarding.json").read_text())
    assert onboarding["status"] == "pass", onboarding
    assert onboarding["value"] == round(recorded["duration_seconds"] / 3600, 5)
    assert onboarding["source"] == "onboarding record of onboarding-check"


def test_no_password_or_token_is_printed(platform):
    secrets = [
        secret(platform, "jupyterhub-user-admin")["password"],
        secret(platform, "jupyterhub-user-onboarding-check")["password"],
        *secret(platform, "jupyterhub").values(),
    ]
    for output in platform.outputs:
        for value in secrets:
            assert value not in output
    supervisor_conf = (platform.home / "supervisor" / "conf.d" / "jupyterhub.conf").read_text()
    assert not any(value in supervisor_conf for value in secrets)


# --- teardown ------------------------------------------------------------------------------------
def test_teardown_keeps_the_notebooks_and_a_later_bring_up_lets_the_admin_in_again(platform):
    notebook = platform.home / "data/jupyterhub/users/kernel-test/keep.ipynb"
    notebook.write_text("{}")
    result = platform.run("teardown.yml", "--tags", "jupyterhub")
    assert_ok(result, "teardown.yml --tags jupyterhub")
    assert "set jupyterhub_delete_data=true to delete them" in " ".join(result.output.split())
    assert "jupyterhub" not in platform.ctl("status").stdout
    assert not (platform.home / "venvs/jupyterhub").exists() and not (platform.home / "venvs/jupyter-kernel").exists()
    assert not (platform.home / "observability/targets/jupyterhub.yml").exists()
    assert notebook.exists()
    assert (platform.home / "jupyterhub" / "jupyterhub.sqlite").exists()

    wait_until(lambda: not _answers(hub_url(platform, "/hub/health")), timeout=30, what="the Hub to stop")
    again = platform.run(
        "phase2.yml", "--tags", "jupyterhub", timed="phase2 jupyterhub (after teardown, pip cache warm)"
    )
    assert_ok(again, "phase2.yml after teardown")
    assert login(platform, "admin", secret(platform, "jupyterhub-user-admin")["password"])[0] == 302
    assert "kernel-test" in {u["name"] for u in api(platform, "/users")}, "the accounts were kept"

    gone = platform.run("teardown.yml", "--tags", "jupyterhub", "-e", "jupyterhub_delete_data=true")
    assert_ok(gone, "teardown.yml with jupyterhub_delete_data")
    assert not (platform.home / "data/jupyterhub/users").exists() and not (platform.home / "jupyterhub").exists()
    assert not list((platform.home / "secrets").glob("jupyterhub*"))


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - loopback http only
            return True
    except OSError:
        return False
