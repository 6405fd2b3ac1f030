"""The mec_gateway role's httpd.conf template, run by a real Debian apache2 on loopback.

The template is rendered with Jinja2 exactly as the role renders it (only the listen address, the
runtime and log directories differ from the container), and the proxied requests reach a fake
sandbox upstream. Needs the apache2 package and root (httpd drops to www-data itself).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import jinja2
import pytest
import yaml

from apps_helpers import REPO, free_port, serving_upstream, users

ROLE = REPO / "roles" / "mec_gateway"
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"

pytestmark = pytest.mark.skipif(not os.path.exists(APACHE) or os.geteuid() != 0,
                                reason="needs Debian's apache2 package and root")


def render(upstream_url, port, workdir, **overrides):
    """Render the role's template with the role's defaults plus loopback-specific settings."""
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(mec_gateway_upstream_url=upstream_url, mec_gateway_listen_port=port,
                     mec_gateway_listen_address="127.0.0.1",
                     mec_gateway_runtime_dir=str(workdir / "run"), mec_gateway_log_dir=str(workdir / "log"))
    variables.update(overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string((ROLE / "templates" / "httpd.conf.j2").read_text()).render(**variables)
    (workdir / "httpd.conf").write_text(text)
    return text


class Httpd:
    def __init__(self, workdir):
        self.conf = str(workdir / "httpd.conf")
        self.proc = subprocess.Popen([APACHE, "-f", self.conf, "-DFOREGROUND"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def graceful(self):
        subprocess.run([APACHE, "-f", self.conf, "-k", "graceful"], check=True, capture_output=True)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def gateway_dir():
    workdir = Path(tempfile.mkdtemp(prefix="mec-gateway-test-"))
    for sub in ("run", "log"):
        (workdir / sub).mkdir()
    os.chmod(workdir, 0o755)
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def second_upstream():
    with serving_upstream() as fake:
        yield fake


def wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return fetch(port, "/")
        except OSError:
            time.sleep(0.05)
    raise AssertionError("httpd did not listen on port %d" % port)


def fetch(port, path):
    """Return (status, body) of a GET through the gateway."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture
def running_gateway(upstream, gateway_dir):
    port = free_port()
    render(upstream.url, port, gateway_dir)
    check = subprocess.run([APACHE, "-t", "-f", str(gateway_dir / "httpd.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    httpd = Httpd(gateway_dir)
    wait_for_port(port)
    yield httpd, port
    httpd.stop()


def test_gateway_proxies_to_the_upstream_under_its_base_path(upstream, running_gateway):
    _httpd, port = running_gateway
    upstream.set("/location/v2/queries/users", users("zone07"))
    status, body = fetch(port, "/location/v2/queries/users")
    assert status == 200
    assert '"zoneId": "zone07"' in body
    assert upstream.count("/location/v2/queries/users") == 1


def test_gateway_access_log_has_millisecond_timestamps_and_the_client(upstream, running_gateway, gateway_dir):
    _httpd, port = running_gateway
    upstream.set("/rni/v2/queries/rab_info", {"cellUserInfo": []})
    assert fetch(port, "/rni/v2/queries/rab_info")[0] == 200
    pattern = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} 127\.0\.0\.1 '
                         r'"GET /rni/v2/queries/rab_info HTTP/1\.1" 200 \d+ \d+us$')
    deadline = time.monotonic() + 5
    lines = []
    while time.monotonic() < deadline:
        lines = (gateway_dir / "log" / "access.log").read_text().splitlines()
        if any(pattern.match(line) for line in lines):
            break
        time.sleep(0.05)
    assert any(pattern.match(line) for line in lines), lines


def test_gateway_answers_an_error_at_once_when_the_upstream_is_down(dead_url, gateway_dir):
    port = free_port()
    render(dead_url, port, gateway_dir)
    httpd = Httpd(gateway_dir)
    try:
        wait_for_port(port)
        status, _body = fetch(port, "/location/v2/queries/users")
        assert status in (502, 503)
        assert httpd.proc.poll() is None
    finally:
        httpd.stop()


def test_gateway_upstream_switch_with_a_graceful_reload(upstream, second_upstream, running_gateway, gateway_dir):
    httpd, port = running_gateway
    upstream.set("/location/v2/queries/zones", {"zoneList": {"zone": [{"zoneId": "old"}]}})
    second_upstream.set("/location/v2/queries/zones", {"zoneList": {"zone": [{"zoneId": "new"}]}})
    assert '"old"' in fetch(port, "/location/v2/queries/zones")[1]
    render(second_upstream.url, port, gateway_dir)
    httpd.graceful()
    deadline = time.monotonic() + 10
    body = ""
    while time.monotonic() < deadline:
        body = fetch(port, "/location/v2/queries/zones")[1]
        if '"new"' in body:
            break
        time.sleep(0.1)
    assert '"new"' in body
    assert httpd.proc.poll() is None, "a graceful reload keeps the httpd parent process"
    assert second_upstream.count("/location/v2/queries/zones") >= 1


@pytest.mark.parametrize("verify", [True, False])
def test_https_upstream_config_enables_the_ssl_proxy_and_passes_httpd_check(gateway_dir, verify):
    text = render("https://try-mec.etsi.org/sbxexample", free_port(), gateway_dir,
                  mec_gateway_upstream_tls_verify=verify)
    assert "SSLProxyEngine On" in text
    assert ("SSLProxyVerify require" in text) is verify
    assert 'ProxyPass "/" "https://try-mec.etsi.org/sbxexample/"' in text
    check = subprocess.run([APACHE, "-t", "-f", str(gateway_dir / "httpd.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_http_upstream_config_has_no_ssl_proxy(gateway_dir):
    text = render("http://172.30.77.5:8080/sandbox/", 80, gateway_dir)
    assert "SSLProxyEngine" not in text
    assert 'ProxyPass "/" "http://172.30.77.5:8080/sandbox/" connectiontimeout=2 timeout=10 retry=0' in text
