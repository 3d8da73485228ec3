"""The web view (`fracta ui`) driven in a real headless Chromium against a real control plane and
real command agents: the login link, the live fleet, an agent's panel, and merge, kill and send
from the page with the refusals the CLI gives."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliRunner, git
from lifecycle_helpers import cleanup, use_free_port
from playwright.sync_api import Browser, Page, sync_playwright

from fracta import agents
from fracta import repo as repo_mod

pytestmark = pytest.mark.timeout(300)
CHROMIUM = "/usr/bin/chromium"
WAIT = 60_000  # ms: a liveness bound for the page, never a timing assertion


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup-chromium installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def fr(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """One agent runs at a time (the next waits in the queue); a free port; fracta on the agents' PATH."""
    cfg = initialized.config_path
    cfg.write_text(cfg.read_text().replace("max_agents: 4", "max_agents: 1"))
    use_free_port(initialized)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    (initialized.root / "shared.txt").write_text("one\n")
    git(initialized.root, "add", "shared.txt")
    git(initialized.root, "commit", "-qm", "shared")
    return repo_mod.find(initialized.root, env={**os.environ})


def link(cli: CliRunner) -> str:
    done = cli("ui", "--no-open")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert "/ui?token=" in url and url.startswith("http://127.0.0.1:"), url
    return url


def test_without_a_control_plane_fracta_ui_says_to_run_fracta_up(initialized: repo_mod.Repo, cli: CliRunner) -> None:
    done = cli("ui", "--no-open")
    assert done.returncode == 8 and "fracta up" in done.stderr, done.stderr


def test_a_link_works_once_and_only_its_session_cookie_opens_the_page_and_the_api(
    fr: repo_mod.Repo, cli: CliRunner, browser: Browser
) -> None:
    with cleanup(fr):
        assert cli("up").returncode == 0
        url = link(cli)
        base = url.split("/ui?", 1)[0]
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(url)
        assert page.url == f"{base}/ui"  # the token is gone from the address
        cookie = next(c for c in ctx.cookies() if c["name"].startswith("fracta_ui_"))
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.wait_for_selector("#live[data-live=live]", timeout=WAIT)

        other = browser.new_context()
        again = other.new_page()
        reused = again.goto(url)
        assert reused is not None and reused.status == 403
        assert "used up" in again.inner_text("h1") and "fracta ui" in again.inner_text("main")
        bare = again.goto(f"{base}/ui")
        assert bare is not None and bare.status == 401 and "fracta ui" in again.inner_text("main")
        assert other.request.get(f"{base}/v1/agents").status == 401
        assert other.request.get(f"{base}/ui/fleet").status == 401

        # The session reads the API; a change without the page's CSRF header is refused.
        assert ctx.request.get(f"{base}/v1/agents").status == 200
        assert ctx.request.post(f"{base}/v1/messages", data={"to": "*", "message": "x"}).status == 401
        csrf = page.get_attribute("meta[name=fracta-csrf]", "content")
        forged = {"X-Fracta-CSRF": str(csrf), "Origin": "http://evil.example"}
        assert ctx.request.post(f"{base}/v1/messages", data={"to": "*", "message": "x"}, headers=forged).status == 401
        ok = ctx.request.post(
            f"{base}/v1/messages", data={"to": "*", "message": "x"}, headers={"X-Fracta-CSRF": str(csrf)}
        )
        assert ok.status == 201, ok.text()


def shows(page: Page, selector: str, text: str) -> None:
    """Wait until the element shows `text` (the page changes as events arrive)."""
    check = "([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)"
    page.wait_for_function(check, arg=[selector, text], timeout=WAIT)


def row_state(page: Page, name: str, state: str) -> None:
    page.wait_for_selector(f"#agent-{name}[data-state={state}]", timeout=WAIT)


def test_the_page_follows_the_fleet_live_and_merges_kills_and_sends_with_the_clis_refusals(
    fr: repo_mod.Repo, cli: CliRunner, browser: Browser, tmp_path: Path
) -> None:
    flags = tmp_path
    alpha = (
        f"until [ -e {flags / 'go'} ]; do echo tick; sleep 0.1; done; "
        "echo changed > shared.txt && echo a > alpha.txt && git add -A && git commit -qm 'alpha work' && "
        "echo scratch > scratch.txt && "  # uncommitted: kill must refuse to lose it
        "fracta say chessmaster 'alpha done: ready to merge'; "
        f"until [ -e {flags / 'read'} ]; do sleep 0.1; done; "
        f"while :; do fracta inbox >/dev/null; sleep 0.2; done"
    )
    beta = "echo b > beta.txt && git add beta.txt && git commit -qm 'beta work' && fracta say chessmaster 'beta done'"
    with cleanup(fr):
        assert cli("up").returncode == 0
        page = browser.new_context().new_page()
        page.goto(link(cli))
        page.wait_for_selector("#live[data-live=live]", timeout=WAIT)
        page.evaluate("window.notReloaded = true")

        # New agents appear without a reload: alpha works, beta waits in the queue (idle).
        assert cli("spawn", "alpha", "--", "sh", "-c", alpha).returncode == 0
        assert cli("spawn", "beta", "--", "sh", "-c", f"{beta}; sleep 600").returncode == 0
        row_state(page, "alpha", "working")
        row_state(page, "beta", "idle")
        assert "queued" in page.inner_text("#agent-beta .reason")
        (flags / "go").touch()
        row_state(page, "alpha", "needs-you")
        shows(page, "#agent-alpha .reason", "alpha done")
        assert page.inner_text("#totals .state-needs-you").startswith("1 ")

        # Its panel: branch against main, last commit, the diff, its output, its messages.
        page.click("#agent-alpha td.name")
        page.wait_for_selector(".agent-detail[data-agent=alpha]", timeout=WAIT)
        detail = page.inner_text("#detail-body")
        assert "feature/alpha: 1 ahead, 0 behind main" in detail and "not merged" in detail, detail
        assert "alpha work" in detail and "scratch.txt" in detail and "+changed" in detail
        shows(page, "#peek", "tick")

        # A message from the page: stored, then read when alpha reads its inbox, live.
        page.fill("#send-to", "alpha")
        page.fill("#send-message", "thanks, one more thing")
        page.click("#send button[type=submit]")
        page.wait_for_selector("#send-result .say.ok", timeout=WAIT)
        page.wait_for_selector(".messages.from tr[data-delivery=stored]", timeout=WAIT)
        (flags / "read").touch()
        page.wait_for_selector(".messages.from tr[data-delivery=read]", timeout=WAIT)

        # Merge: main changed shared.txt too, so the preview shows the conflict and nothing is merged.
        (fr.root / "shared.txt").write_text("mine\n")
        git(fr.root, "commit", "-qam", "main changes shared")
        head = git(fr.root, "rev-parse", "HEAD").strip()
        page.click("#merge-preview")
        page.wait_for_selector("#action-result .say.refused", timeout=WAIT)
        said = page.inner_text("#action-result")
        assert "would conflict" in said and "shared.txt" in said, said
        assert page.query_selector("#action-result button.primary") is None  # no way to confirm it
        assert git(fr.root, "rev-parse", "HEAD").strip() == head

        # Kill: refused while alpha holds unsaved work; forced, the page says where it is kept.
        page.click("#kill")
        page.wait_for_selector("#action-result .say.refused button.danger", timeout=WAIT)
        assert "alpha" in page.inner_text("#action-result")
        assert agents.exists(fr, "alpha")
        page.click("#action-result button.danger")
        page.wait_for_selector("#action-result .say.ok", timeout=WAIT)
        kept = page.inner_text("#action-result")
        assert "refs/fracta/archive/alpha/" in kept, kept
        ref = kept.split("kept in ", 1)[1].split(" ", 1)[0]
        assert "scratch.txt" in git(fr.root, "ls-tree", "-r", "--name-only", ref)
        page.wait_for_selector("#agent-alpha", state="detached", timeout=WAIT)

        # beta leaves the queue (idle -> working or straight on) and reports: it needs you; merge it.
        row_state(page, "beta", "needs-you")
        page.click("#agent-beta td.name")
        page.wait_for_selector(".agent-detail[data-agent=beta]", timeout=WAIT)
        page.click("#merge-preview")
        page.wait_for_selector("#action-result .say.confirm button.primary", timeout=WAIT)
        page.click("#action-result button.primary")
        page.wait_for_selector("#action-result .say.ok", timeout=WAIT)
        assert "Merged feature/beta into main" in page.inner_text("#action-result")
        assert "beta work" in git(fr.root, "log", "--format=%s", "-3")
        shows(page, "#detail-body", "merged (nothing to merge)")
        assert page.evaluate("window.notReloaded") is True  # everything above came without a reload
        page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)
        assert (tmp_path / "ui.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
