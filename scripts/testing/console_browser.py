#!/usr/bin/env python3
"""Drives the outbox-relay console in headless Chromium (apt's chromium and
chromium-driver, through selenium) for Tests/IntegrationTests/ConsoleBrowserTests.swift.

    console_browser.py --url http://127.0.0.1:PORT/console --admin-token obx_… --read-token obx_…
                       --event-id ID --disable NAME [--screenshots DIR]
                       [--guarded NAME --never-shown TEXT [--never-shown TEXT …]]

The story: log in with the admin token, find the dead delivery of event ID,
check the attacker-controlled payload is shown as text, replay it, and see it
succeed with a second attempt; save the overview and the delivery page when
--screenshots is given; disable subscription --disable; then log in with the read token and check the write
buttons are gone. With --guarded, the subscriptions page shows subscription NAME
to both tokens and no --never-shown text (a URL password, a credential header's
value) is anywhere in the page. Prints one line per step; exits 0 when every step held,
1 (with the page's text) when one did not. Runs in its own process group and
quits the browser on SIGTERM, so the test can stop everything by this PID.
"""

import argparse
import os
import signal
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def step(text: str) -> None:
    print(f"console_browser: {text}", flush=True)


def start_browser(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    # Explicit paths: selenium never looks for (or downloads) a driver or browser itself.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class Console:
    def __init__(self, driver: webdriver.Chrome, url: str) -> None:
        self.driver = driver
        self.url = url
        self.wait = WebDriverWait(driver, 15, poll_frequency=0.1)

    def settled(self, action):
        """Runs `action`, again when the page re-rendered under it (the console refreshes every 2 s)."""
        for _ in range(20):
            try:
                return action()
            except StaleElementReferenceException:
                time.sleep(0.05)
        return action()

    def text_of(self, selector: str) -> str:
        return self.settled(lambda: self.wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, selector))).text)

    def until_text(self, selector: str, expected: str) -> None:
        self.wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, selector), expected))

    def click(self, selector: str) -> None:
        self.settled(lambda: self.wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, selector))).click())

    def log_in(self, token: str) -> None:
        self.driver.get(self.url)
        field = self.wait.until(ready.visibility_of_element_located((By.ID, "token")))
        field.send_keys(token)
        self.click("#login")
        self.wait.until(ready.visibility_of_element_located((By.ID, "backlog")))

    def log_out(self) -> None:
        self.click("#logout")
        self.wait.until(ready.visibility_of_element_located((By.ID, "token")))

    def search(self, event_id: str) -> None:
        self.click('#nav a[href="#/deliveries"]')
        field = self.wait.until(ready.visibility_of_element_located((By.ID, "event-id")))
        field.clear()
        field.send_keys(event_id)
        self.click("#search")
        # The list before the search may hold the event too: wait for the search's own answer.
        self.until_text("main", f"Deliveries of event {event_id}:")
        self.until_text("main table", event_id)

    def open_delivery(self, event_id: str) -> None:
        self.click(f'main tr[data-event-id="{event_id}"] a')

    def screenshot(self, directory: str | None, name: str) -> None:
        if directory:
            path = os.path.join(directory, name)
            self.driver.save_screenshot(path)
            step(f"saved {path}")


def expect_never_shown(console: Console, arguments: argparse.Namespace, who: str) -> None:
    """On the subscriptions page, the guarded subscription is listed and no credential is in the page."""
    if not arguments.guarded:
        return
    console.click('#nav a[href="#/subscriptions"]')
    console.until_text(f'main tr[data-name="{arguments.guarded}"]', arguments.guarded)
    page = console.driver.page_source + console.driver.find_element(By.TAG_NAME, "body").text
    shown = [text for text in arguments.never_shown if text in page]
    if shown:
        raise AssertionError(f"the subscriptions page shows {shown} to the {who} token")
    step(f"the subscriptions page shows no endpoint credential to the {who} token")


def story(console: Console, arguments: argparse.Namespace) -> None:
    console.log_in(arguments.admin_token)
    step("logged in with the admin token")
    if arguments.screenshots:
        console.until_text("#throughput", ".")
        console.screenshot(arguments.screenshots, "console-overview.png")

    console.search(arguments.event_id)
    step("found the delivery by event id")
    console.open_delivery(arguments.event_id)
    console.until_text("#delivery-status", "dead")
    step("the delivery is dead")
    payload = console.text_of("pre")
    if "<script>" not in payload:
        raise AssertionError(f"the payload should show its markup as text, got {payload!r}")
    if console.driver.find_elements(By.CSS_SELECTOR, "main script, main img"):
        raise AssertionError("the payload's markup became elements")

    console.click("#replay")
    step("replayed")
    console.until_text("#delivery-status", "succeeded")
    attempts = console.driver.find_elements(By.CSS_SELECTOR, "tr.attempt")
    if len(attempts) < 2:
        raise AssertionError(f"expected the failed attempt and the successful one, saw {len(attempts)}")
    step(f"the delivery succeeded after the replay ({len(attempts)} attempts shown)")
    console.screenshot(arguments.screenshots, "console-delivery.png")

    expect_never_shown(console, arguments, "admin")
    console.click('#nav a[href="#/subscriptions"]')
    console.click(f'main tr[data-name="{arguments.disable}"] button')
    console.until_text(f'main tr[data-name="{arguments.disable}"]', "Enable")
    step(f"disabled subscription {arguments.disable}")

    console.log_out()
    console.log_in(arguments.read_token)
    console.search(arguments.event_id)
    console.open_delivery(arguments.event_id)
    console.until_text("#delivery-status", "succeeded")
    if console.driver.find_elements(By.ID, "replay"):
        raise AssertionError("a read-only token sees the replay button")
    console.click('#nav a[href="#/subscriptions"]')
    console.until_text("main table", "read-only")
    step("a read-only token sees no write buttons")
    expect_never_shown(console, arguments, "read")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--read-token", required=True)
    parser.add_argument("--event-id", required=True)
    parser.add_argument("--disable", required=True, help="a subscription to disable on the subscriptions page")
    parser.add_argument("--screenshots")
    parser.add_argument("--guarded", help="a subscription whose URL and headers carry credentials")
    parser.add_argument("--never-shown", action="append", default=[], help="text no page may contain (repeatable)")
    arguments = parser.parse_args()

    # The test stops this process group by its id; chromedriver and chromium join it.
    os.setpgid(0, 0)

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # Children of the test runner start with signals blocked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="outbox-console-chromium-") as profile:
        driver = start_browser(profile)
        try:
            story(Console(driver, arguments.url), arguments)
        except (AssertionError, TimeoutException) as failure:
            step(f"FAILED: {type(failure).__name__}: {failure}")
            step("page text:\n" + driver.find_element(By.TAG_NAME, "body").text)
            return 1
        finally:
            driver.quit()
    step(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
