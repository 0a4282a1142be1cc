"""The demo as the pipeline runs it: a background process started and hot-swapped by the deploy_demo flow.

One demo process for the module (`python -m ui.app` via `components.services.demo`, polling off, so
only deploy_demo's reload can move it), the flow tests' temporary Prefect server, and a real
headless Chromium (Debian's `chromium` driven by playwright) that chats in English and Chinese,
watches the reply stream in, and sees the version in the header change after a promotion.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import httpx
import pytest
from gradio_client import Client
from typer.testing import CliRunner

from components.services import demo as demo_proc
from components.services import procs
from components.serving.config import DemoConfig
from components.serving.generate import DEFAULT_SYSTEM
from tests.components.serving import conftest as serving
from tests.components.serving import fixtures as fx
from tests.ui.conftest import free_port

# the serving tests' tiny chat models and registry (fixtures are found by name in the module)
_one_torch_thread, chat_dirs, registry = serving._one_torch_thread, serving.chat_dirs, serving.registry

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


@dataclass
class Deployed:
    first: str  # what the first deploy_demo returned
    cfg: DemoConfig
    registry: object

    def deploy(self) -> str:
        from flows.demo import deploy_demo

        return deploy_demo()

    def approve_and_deploy(self, version: int) -> str:
        self.registry.approve(version)
        return self.deploy()


@pytest.fixture(scope="module")
def deployed(registry, prefect_server):
    from flows.demo import deploy_demo

    patch = pytest.MonkeyPatch()
    for key, value in {"DSLLM_HOME": str(registry.home.root), "MLFLOW_TRACKING_URI": registry.uri,
                       "DSLLM_DEMO_PORT": str(free_port()), "DSLLM_DEMO_POLL_S": "0",
                       "DSLLM_DEMO_STREAM_INTERVAL_S": "0"}.items():  # tiny model: an update per piece
        patch.setenv(key, value)
    patch.delenv("DSLLM_DEMO_AUTH", raising=False)
    registry.approve(1)
    try:
        yield Deployed(deploy_demo(), DemoConfig.resolve(), registry)
    finally:
        demo_proc.down()
        registry.approve(1)
        patch.undo()


def test_polling_before_any_approval_waits_quietly_and_a_direct_call_fails_clearly(deployed):
    from flows.demo import deploy_demo

    assert deploy_demo(model="dsllm-unknown", missing_ok=True) is None
    with pytest.raises(LookupError, match="dsllm-unknown"):
        deploy_demo(model="dsllm-unknown")
    assert demo_proc.served()["version"] == deployed.first, "the running demo was left alone"


def chat(url: str, message: str, client: Client | None = None) -> str:
    client = client or Client(url, verbose=False)
    return client.predict(message, DEFAULT_SYSTEM, 0.0, 0.95, 64, api_name="/chat")


def cli(*args: str):
    from dsllm.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_deploy_demo_starts_the_demo_when_it_is_down(deployed):
    v1 = deployed.registry.versions[1]
    assert deployed.first == v1
    pid = demo_proc.running_pid()
    assert pid is not None and procs.alive(pid)
    assert chat(deployed.cfg.url, fx.PROMPTS[0]) == fx.replies(1)[0]
    status = cli("demo", "status")
    assert status.exit_code == 0, status.output
    assert f"dsllm-chat v{v1}" in status.output and str(pid) in status.output


def test_the_demo_keeps_its_engine_and_web_server_on_separate_cores(deployed):
    import psutil

    split = deployed.cfg.core_split()
    if split is None:
        pytest.skip("no core to spare for the web server here (or no sched_setaffinity)")
    server = psutil.Process(demo_proc.running_pid())
    engines = [p for p in server.children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(engines) == 1, "one engine process for the one model served"

    def cores_of_threads(process) -> set[tuple[int, ...]]:
        return {tuple(psutil.Process(t.id).cpu_affinity()) for t in process.threads()}

    assert cores_of_threads(server) == {tuple(sorted(split.server))}
    assert cores_of_threads(engines[0]) == {tuple(sorted(split.engine))}


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install -y chromium")
def test_a_browser_chats_in_english_and_chinese_and_sees_the_version(deployed):
    from playwright.sync_api import sync_playwright

    reg, url = deployed.registry, deployed.cfg.url
    if demo_proc.served()["version"] != reg.versions[1]:  # when run after tests that moved it
        deployed.approve_and_deploy(1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector(f"#dsllm-header:has-text('dsllm-chat v{reg.versions[1]}')")
            for lang in (0, 1):
                seen = send_in_browser(page, fx.PROMPTS[lang])
                assert seen[-1] == fx.replies(1)[lang]
                assert len(set(seen)) >= 3 and all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))
                page.goto(url)  # a fresh session for the next language
                page.wait_for_selector("#dsllm-header")
            assert deployed.approve_and_deploy(2) == reg.versions[2]
            # the open page follows the swap by itself (no reload)
            page.wait_for_selector(f"#dsllm-header:has-text('dsllm-chat v{reg.versions[2]}')", timeout=30_000)
            assert send_in_browser(page, fx.PROMPTS[0])[-1] == fx.replies(2)[0]
            page.get_by_role("tab", name="Model card").click()
            page.wait_for_selector("#dsllm-card:has-text('dsllm.data')")
            assert "data-key-2" in page.inner_text("#dsllm-card")
            page.wait_for_function("() => document.querySelectorAll('#dsllm-gallery img').length >= 2")
        finally:
            browser.close()


WATCH_BOT = """() => { window.__seen = []; const seen = window.__seen;
  new MutationObserver(() => { const bots = document.querySelectorAll('#dsllm-chatbot [data-testid="bot"]');
    const text = bots.length ? bots[bots.length - 1].innerText.trim() : '';
    if (text && text !== seen[seen.length - 1]) seen.push(text); })
  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def send_in_browser(page, message: str) -> list[str]:
    """Type a message with temperature 0; every text the newest reply showed on its way to the end."""
    temperature = page.locator("#dsllm-temperature input[type=number]")
    temperature.fill("0")
    temperature.press("Tab")
    page.evaluate(WATCH_BOT)
    box = page.locator("#dsllm-message textarea")
    box.fill(message)
    box.press("Enter")
    page.wait_for_function("() => !document.querySelector('#dsllm-message textarea').disabled && "
                           "window.__seen.length > 0", timeout=60_000)
    page.wait_for_timeout(500)  # the last piece lands before the textbox is enabled, but let it settle
    return page.evaluate("() => window.__seen")


def test_a_promotion_hot_swaps_the_running_demo_without_dropping_sessions(deployed):
    reg, url = deployed.registry, deployed.cfg.url
    assert deployed.approve_and_deploy(1) == reg.versions[1]
    pid, session = demo_proc.running_pid(), Client(url, verbose=False)
    assert chat(url, fx.PROMPTS[0], session) == fx.replies(1)[0]
    reg.approve(2)
    assert demo_proc.served()["version"] == reg.versions[1]  # polling is off: only deploy_demo moves it
    assert deployed.deploy() == reg.versions[2]
    assert demo_proc.running_pid() == pid  # swapped in place, not restarted
    assert chat(url, fx.PROMPTS[0]) == fx.replies(2)[0]
    # the session opened before the swap still works (its history now goes to the new model)
    assert isinstance(chat(url, fx.PROMPTS[1], session), str)
    assert httpx.get(f"{url}/dsllm/version").json()["swaps"] >= 1


def test_a_rejected_candidate_leaves_the_demo_where_it_was(deployed):
    reg = deployed.registry
    assert deployed.approve_and_deploy(2) == reg.versions[2]
    # version 3 is registered but the gate did not move the alias: redeploying changes nothing
    assert deployed.deploy() == reg.versions[2]
    assert demo_proc.served()["version"] == reg.versions[2] != reg.versions[3]
    assert chat(deployed.cfg.url, fx.PROMPTS[1]) == fx.replies(2)[1]


def test_rollback_moves_the_demo_back(deployed):
    reg = deployed.registry
    deployed.approve_and_deploy(2)
    assert deployed.approve_and_deploy(1) == reg.versions[1]  # `previous` put back on `approved`
    assert chat(deployed.cfg.url, fx.PROMPTS[0]) == fx.replies(1)[0]


def test_cli_down_stops_the_demo(deployed):
    result = cli("demo", "down")
    assert result.exit_code == 0 and "stopped" in result.output
    assert demo_proc.running_pid() is None and procs.port_free(deployed.cfg.port)
    assert cli("demo", "status").exit_code == 1
