#!/usr/bin/python3
"""heaven's pages in a real browser: Debian's Chromium, headless, driven
through WebDriver (chromium-driver, python3-selenium).

Run by the test_pages binary (tests/e2e/pages.cpp), which starts heaven, a
GitHub stand-in and the deployments this script looks at, then checks what
the stand-in and heaven's store saw. This script signs in as the stand-in's
"amy" through the real OAuth redirects, looks at the pages, presses their
buttons and saves screenshots. Progress goes to stderr; the last line on
stdout is "summary: <JSON>". Any failed check ends it with status 1 and a
message saying what was expected and what was there.

Usage: pages.py --base URL --running ID --rollback ID --states JSON
                --screenshots DIR
"""

import argparse
import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def say(message):
    print("pages.py: " + message, file=sys.stderr, flush=True)


def wait_until(what, predicate, seconds=20.0):
    """Polls `predicate` every 0.1 s until it returns something true, for
    up to `seconds` (a bound, not an assertion on timing)."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed("gave up waiting for " + what)
        time.sleep(0.1)


def path_of(driver, base):
    url = driver.current_url
    check(url.startswith(base), "the browser left heaven: " + url)
    return url[len(base):]


def notice(driver):
    found = driver.find_elements(By.CSS_SELECTOR, "main p.notice")
    return found[0].text if found else None


def start_browser(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to
    # start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=%d,%d" % (width, height)):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                            options=options)


def shoot(driver, shots, name, summary):
    path = shots + "/" + name
    check(driver.save_screenshot(path), "could not save " + path)
    summary["screenshots"].append(path)
    say("saved " + path)


def sign_in(driver, base, summary):
    """Nobody is signed in: the deployments page sends the browser to
    GitHub's (the stand-in's) sign-in, which sends it back signed in."""
    driver.get(base + "/ui/deployments")
    wait_until("the deployments table after signing in",
               lambda: driver.find_elements(By.ID, "deployments"))
    check(path_of(driver, base) == "/ui/deployments",
          "after signing in the browser is at " + driver.current_url)
    # The renderer puts who is signed in beside the nav, in the header.
    who = driver.find_elements(By.CSS_SELECTOR, "header .who")
    check(who and who[0].text == "amy",
          "the header does not name amy: %r" % [w.text for w in who])
    forms = driver.find_elements(
        By.CSS_SELECTOR, "header form[action='/auth/signout']")
    check(len(forms) == 1, "no sign-out form in the header")
    summary["signed_in_as"] = who[0].text


def deployments(driver, base, states, shots, summary):
    rows = driver.find_elements(By.CSS_SELECTOR, "#deployments tbody tr")
    ids = [r.get_attribute("id") for r in rows]
    summary["rows"] = ids
    for id, state in states.items():
        row = driver.find_elements(By.ID, "d" + id)
        check(row, "no row d%s in the list: %r" % (id, ids))
        check(row[0].get_attribute("data-state") == state,
              "row d%s has data-state %r, not %r"
              % (id, row[0].get_attribute("data-state"), state))
        badge = row[0].find_elements(By.CSS_SELECTOR,
                                     "span.badge.state-" + state)
        check(badge and badge[0].text == state,
              "row d%s has no %s badge" % (id, state))
        link = row[0].find_element(By.CSS_SELECTOR, "a.open")
        check(link.get_attribute("href") == base + "/ui/deployments/" + id,
              "row d%s opens %s" % (id, link.get_attribute("href")))
        check(link.text == "#" + id, "row d%s's link says %r" % (id, link.text))
    # Newest first.
    numbers = [int(i[1:]) for i in ids]
    check(numbers == sorted(numbers, reverse=True),
          "the rows are not newest first: %r" % ids)
    live = driver.find_element(By.ID, "deployments").get_attribute("data-live")
    check(live == "1", "a deployment runs, yet the table's data-live is %r"
          % live)
    shoot(driver, shots, "deployments.png", summary)


def live_log(driver, base, running, shots, summary):
    driver.find_element(By.CSS_SELECTOR,
                        "#d%s a.open" % running).click()
    wait_until("the running deployment's page",
               lambda: path_of(driver, base) == "/ui/deployments/" + running
               and driver.find_elements(By.ID, "log"))
    h1 = driver.find_element(By.TAG_NAME, "h1").text
    check(h1 == "octo/app #" + running, "the page's title is %r" % h1)
    log = driver.find_element(By.ID, "log")
    check(log.get_attribute("data-follow"),
          "the running deployment's log has no data-follow")
    # A marker that a reload would wipe out.
    driver.execute_script("window.heavenMarker = 'still here';")
    before = len(driver.find_elements(By.CSS_SELECTOR, "#log .line"))
    say("the log shows %d lines; waiting for more" % before)
    after = wait_until(
        "new log lines without a reload",
        lambda: (lambda n: n if n > before + 1 else 0)(
            len(driver.find_elements(By.CSS_SELECTOR, "#log .line"))))
    marker = driver.execute_script("return window.heavenMarker;")
    check(marker == "still here",
          "the page was reloaded (the marker is %r)" % marker)
    navigations = driver.execute_script(
        "return performance.getEntriesByType('navigation').length;")
    check(navigations == 1, "%r navigations" % navigations)
    # The coloured line is a span inside the line's text, without escapes.
    coloured = [line for line in
                driver.find_elements(By.CSS_SELECTOR, "#log .line .text")
                if line.text == "ok"]
    check(coloured, "no log line reads exactly 'ok'")
    spans = coloured[0].find_elements(By.TAG_NAME, "span")
    check(spans and spans[0].text == "ok" and spans[0].get_attribute("class"),
          "the 'ok' line has no coloured span: %r"
          % coloured[0].get_attribute("innerHTML"))
    lines = driver.find_elements(By.CSS_SELECTOR, "#log .line")
    # Every line the script and heaven write is different: a line seen
    # twice means the follower sent again what the page already showed.
    texts = [line.find_element(By.CSS_SELECTOR, ".text").text
             for line in lines]
    seen = set()
    again = [t for t in texts if t in seen or seen.add(t)]
    check(not again, "lines shown twice: %r (all: %r)" % (again, texts))
    last = lines[-1]
    number = last.find_element(By.CSS_SELECTOR, "a.ln").text
    check(last.get_attribute("id") == "L" + number,
          "the last line's id %r and number %r differ"
          % (last.get_attribute("id"), number))
    check(int(number) == len(lines),
          "the last line is numbered %s, but there are %d" % (number,
                                                             len(lines)))
    summary["log_lines"] = {"before": before, "after": after,
                            "coloured_class": spans[0].get_attribute("class")}
    shoot(driver, shots, "live-log.png", summary)


def unlock(driver, base, shots, summary):
    driver.find_element(By.CSS_SELECTOR, "nav a[href='/ui/locks']").click()
    selector = "#locks tr[data-repo='octo/app'][data-environment='staging']"
    row = wait_until("the staging lock's row",
                     lambda: driver.find_elements(By.CSS_SELECTOR, selector))
    row[0].find_element(By.CSS_SELECTOR, "button.unlock").click()
    wait_until("the locks page after unlocking",
               lambda: path_of(driver, base) == "/ui/locks?done=unlocked")
    check(not driver.find_elements(By.CSS_SELECTOR, selector),
          "the staging lock is still listed")
    said = notice(driver)
    check(said, "no notice after unlocking")
    summary["unlock_notice"] = said
    shoot(driver, shots, "locks.png", summary)


def enable(driver, base, shots, summary):
    driver.find_element(By.CSS_SELECTOR,
                        "nav a[href='/ui/repositories']").click()
    selector = "#repositories tr[data-repo='octo/other']"
    row = wait_until("octo/other's row",
                     lambda: driver.find_elements(By.CSS_SELECTOR, selector))
    check(row[0].get_attribute("data-active") == "0",
          "octo/other is not disabled before: %r"
          % row[0].get_attribute("data-active"))
    button = row[0].find_element(By.CSS_SELECTOR, "button.switch")
    check(button.text == "Enable", "the button says %r" % button.text)
    button.click()
    wait_until("the repositories page after enabling",
               lambda: path_of(driver, base)
               == "/ui/repositories?done=enabled")
    row = driver.find_element(By.CSS_SELECTOR, selector)
    check(row.get_attribute("data-active") == "1",
          "octo/other's data-active is %r after enabling"
          % row.get_attribute("data-active"))
    check(row.find_element(By.CSS_SELECTOR, "button.switch").text == "Disable",
          "octo/other's button does not offer to disable it")
    said = notice(driver)
    check(said, "no notice after enabling")
    summary["enable_notice"] = said
    shoot(driver, shots, "repositories.png", summary)


def roll_back(driver, base, rollback, shots, summary):
    driver.get(base + "/ui/deployments/" + rollback)
    button = wait_until("the rollback button",
                        lambda: driver.find_elements(By.ID, "rollback"))
    check(button[0].text == "Roll back to this deployment",
          "the rollback button says %r" % button[0].text)
    button[0].click()
    wait_until("the deployment's page after rolling back",
               lambda: path_of(driver, base)
               == "/ui/deployments/%s?done=rollback" % rollback)
    said = notice(driver)
    check(said, "no notice after rolling back")
    summary["rollback_notice"] = said
    shoot(driver, shots, "rollback.png", summary)


def phone(driver, base, shots, summary):
    driver.set_window_size(390, 844)
    driver.get(base + "/ui/deployments")
    wait_until("the deployments table at phone size",
               lambda: driver.find_elements(By.ID, "deployments"))
    summary["phone_scroll_width"] = driver.execute_script(
        "return document.documentElement.scrollWidth;")
    shoot(driver, shots, "deployments-phone.png", summary)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--running", required=True)
    parser.add_argument("--rollback", required=True)
    parser.add_argument("--states", required=True,
                        help='{"<id>": "<state>", ...}')
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    states = json.loads(args.states)
    summary = {"screenshots": []}
    driver = None
    step = "starting Chromium"
    try:
        driver = start_browser(1280, 900)
        step = "signing in"
        sign_in(driver, args.base, summary)
        step = "the deployments list"
        deployments(driver, args.base, states, args.screenshots, summary)
        step = "the live log"
        live_log(driver, args.base, args.running, args.screenshots, summary)
        step = "unlocking"
        unlock(driver, args.base, args.screenshots, summary)
        step = "enabling a repository"
        enable(driver, args.base, args.screenshots, summary)
        step = "rolling back"
        roll_back(driver, args.base, args.rollback, args.screenshots, summary)
        step = "the phone-size deployments page"
        phone(driver, args.base, args.screenshots, summary)
    except (CheckFailed, WebDriverException) as e:
        say("FAILED while %s: %s" % (step, e))
        if driver is not None:
            try:
                say("the browser was at " + driver.current_url)
                shoot(driver, args.screenshots, "failure.png", summary)
            except WebDriverException:
                pass
        print("summary: " + json.dumps(summary), flush=True)
        return 1
    finally:
        if driver is not None:
            driver.quit()
    print("summary: " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
