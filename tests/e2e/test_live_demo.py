"""The browser check against the demo `make pipeline` leaves running (`make demo-check`).

Opens the running demo in headless Chromium, checks that the header shows the version the registry's
`approved` alias points at, and chats once in English and once in Chinese, seeing the reply stream in.
Runs only when DSLLM_DEMO_CHECK=1 (the demo and the registry of this home must be up); CI covers the same
page on its own fixture models in tests/flows/test_deploy_demo.py.
"""

import os
import shutil

import pytest

from tests.flows.test_deploy_demo import CHROMIUM, CHROMIUM_FLAGS, send_in_browser

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.environ.get("DSLLM_DEMO_CHECK") != "1",
                                 reason="checks a running demo: `make demo-check` after `make pipeline`"),
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium")]

PROMPTS = ["Write one sentence about the sea.", "用一句话介绍一下长城。"]


def test_the_running_demo_serves_the_approved_chat_model_in_a_browser():
    from playwright.sync_api import sync_playwright

    from components.serving.config import DemoConfig
    from components.serving.refs import registry_client

    cfg = DemoConfig.resolve()
    approved = registry_client().get_model_version_by_alias("dsllm-chat", "approved")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(cfg.url)
            page.wait_for_selector(f"#dsllm-header:has-text('dsllm-chat v{approved.version}')", timeout=30_000)
            for prompt in PROMPTS:
                seen = send_in_browser(page, prompt)
                assert seen and seen[-1], f"no reply streamed for {prompt!r}"
                assert all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False)), "the reply grows"
                page.goto(cfg.url)
                page.wait_for_selector("#dsllm-header")
        finally:
            browser.close()
