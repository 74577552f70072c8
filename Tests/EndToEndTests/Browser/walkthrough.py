"""The web pages in a real Chromium, driven by Selenium, against a real `modelreg serve` (BrowserTests).

The registry holds org/tiny (1 with a card, 2 with `default` and `awq-int4`; prod -> 1, canary -> 2) and
`hostile` (a file name, a card and a deprecation reason that try to inject markup). Every check fails with a
message saying what the page showed; the CLI checks every move the forms make. Screenshots of each page go
to $UI_SCREENSHOTS. Prints `ok` when everything held.
"""
import json
import os
import subprocess
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, UnexpectedAlertPresentException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["UI_BASE"]
SHOTS = os.environ["UI_SCREENSHOTS"]
MODELREG = os.environ["MODELREG_BIN"]
TOKENS = {name: os.environ["UI_TOKEN_" + name.upper()] for name in ("admin", "write", "read")}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def cli(*arguments, token="admin"):
    environment = dict(os.environ, MODELREG_URL=BASE, MODELREG_TOKEN=TOKENS[token])
    done = subprocess.run([MODELREG, *arguments], env=environment, capture_output=True, text=True, timeout=120)
    check(done.returncode == 0, f"modelreg {' '.join(arguments)}: {done.returncode} {done.stdout} {done.stderr}")
    return done.stdout


def alias_targets(model):
    listed = json.loads(cli("alias", "ls", model, "--json"))
    entries = listed["aliases"] if isinstance(listed, dict) else listed
    return {entry["name"]: entry["version"] for entry in entries}


def browser(javascript=True):
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    started = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    started.set_page_load_timeout(60)
    return started


driver = browser()


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def go(path):
    driver.get(BASE + path)


def text(selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


def no_injected_markup(where):
    """Only the page's own script runs and no element came from the hostile strings."""
    scripts = [element.get_attribute("src") for element in driver.find_elements(By.TAG_NAME, "script")]
    check(scripts == [BASE + "/ui/static/app.js"], f"{where}: scripts on the page: {scripts}")
    check(not driver.find_elements(By.TAG_NAME, "img"), f"{where}: an <img> element was injected")
    check(not driver.find_elements(By.CSS_SELECTOR, "a[href^='javascript']"), f"{where}: a javascript: link")
    check(driver.execute_script("return document.title").endswith("· modelreg"), f"{where}: the title changed")


def submit(button):
    """Clicks what leads to another page (a form's button, a link), and waits for that page: a click does not."""
    old = driver.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_):
        # While the old page goes, asking about it fails as stale or, mid-navigation, as another inspector error.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 30).until(replaced)
    WebDriverWait(driver, 30).until(lambda _: driver.execute_script("return document.readyState") == "complete")


def sign_in(token):
    go("/ui/sign-in")
    driver.find_element(By.ID, "token").send_keys(TOKENS[token])
    submit(driver.find_element(By.ID, "sign-in"))


def sign_out():
    submit(driver.find_element(By.ID, "sign-out"))


def alias_row(alias):
    return driver.find_element(By.CSS_SELECTOR, f"#aliases tr[data-alias='{alias}']")


try:
    # Without --anonymous-read every page asks for a sign-in first, and comes back to the page asked for.
    go("/ui/models/org/tiny")
    check("/ui/sign-in" in driver.current_url, f"not sent to sign in: {driver.current_url}")
    shot("sign-in")
    driver.find_element(By.ID, "token").send_keys("mrg_not-a-token")
    submit(driver.find_element(By.ID, "sign-in"))
    check("unknown or revoked" in text("#error"), "a wrong token was not refused")
    driver.find_element(By.ID, "token").send_keys(TOKENS["write"])
    submit(driver.find_element(By.ID, "sign-in"))
    check(driver.current_url == BASE + "/ui/models/org/tiny", f"signed in to {driver.current_url}")
    go("/ui")
    check(text("#signed-in-as") == "ui-writer", "the signed-in token is not named")

    # The catalogue lists both models with their aliases; the filter box hides the others as one types.
    rows = {row.get_attribute("data-name"): row for row in driver.find_elements(By.CSS_SELECTOR, "#catalogue tbody tr")}
    check(set(rows) == {"org/tiny", "hostile"}, f"catalogue rows: {sorted(rows)}")
    aliases = [cell.text for cell in rows["org/tiny"].find_elements(By.CSS_SELECTOR, ".alias")]
    check(sorted(aliases) == ["canary → 2", "prod → 1"], f"catalogue aliases: {aliases}")
    check("awq 4-bit" in rows["org/tiny"].text, f"no quantization in {rows['org/tiny'].text}")
    no_injected_markup("catalogue")
    shot("catalogue")
    driver.find_element(By.ID, "filter").send_keys("tin")
    check(not rows["hostile"].is_displayed() and rows["org/tiny"].is_displayed(), "the filter did not filter")

    # The model page: alias targets, as the CLI has them.
    submit(rows["org/tiny"].find_element(By.CSS_SELECTOR, "a.model-link"))
    check(text("#model-name") == "org/tiny", "not on the model page")
    for alias, version in alias_targets("org/tiny").items():
        shown = alias_row(alias).find_element(By.CSS_SELECTOR, ".target-version").text
        check(shown == version, f"{alias} shows {shown}, the CLI says {version}")
    shot("model")

    # The calculator marks what `variants --fit` marks, for a budget between the two variants' needs.
    listing = json.loads(cli("variants", "org/tiny:2", "--json"))
    needs = sorted(variant["estimate"]["totalBytes"] for variant in listing["variants"])
    budget = (needs[0] + needs[1]) // 2
    fit = json.loads(cli("variants", "org/tiny:2", "--fit", str(budget), "--json"))
    expected = {variant["name"]: variant["fits"] for variant in fit["variants"]}
    check(sorted(expected.values()) == [False, True], f"the budget {budget} does not split the variants: {expected}")
    calculator = driver.find_element(By.ID, "calculator")
    calculator.find_element(By.NAME, "gpu").send_keys(str(budget))
    submit(calculator.find_element(By.TAG_NAME, "button"))
    version_two = driver.find_element(By.CSS_SELECTOR, "section[data-version='2']")
    marked = {row.get_attribute("data-variant"): "fits" in row.get_attribute("class").split()
              for row in version_two.find_elements(By.CSS_SELECTOR, "tbody tr")}
    check(marked == expected, f"the page marks {marked}, variants --fit {expected}")
    chosen = [row.get_attribute("data-variant")
              for row in version_two.find_elements(By.CSS_SELECTOR, "tbody tr.chosen")]
    check(chosen == [fit["chosen"]], f"the page chose {chosen}, --fit {fit['chosen']}")
    shot("model-calculator")

    # Copy buttons appear with JavaScript and say they copied.
    copy = driver.find_element(By.CSS_SELECTOR, "button.copy")
    check(copy.is_displayed(), "the copy button is hidden")
    copy.click()
    try:
        WebDriverWait(driver, 10).until(lambda _: copy.text == "Copied")
    except TimeoutException:
        check(False, f"the copy button says {copy.text}")

    # Promote canary to prod, then roll it back: the CLI sees each move.
    go("/ui/models/org/tiny")
    form = alias_row("prod").find_element(By.CSS_SELECTOR, "form.promote")
    Select(form.find_element(By.NAME, "from")).select_by_visible_text("canary")
    submit(form.find_element(By.TAG_NAME, "button"))
    check("org/tiny@prod points to 2" in text("#notice"), f"after the promotion: {driver.page_source[:300]}")
    check(alias_targets("org/tiny")["prod"] == "2", "the promotion did not move prod")
    submit(alias_row("prod").find_element(By.CSS_SELECTOR, "form.rollback button"))
    check("org/tiny@prod points to 1" in text("#notice"), "after the rollback the notice is wrong")
    check(alias_targets("org/tiny")["prod"] == "1", "the rollback did not move prod back")

    # A stale page: someone moves prod after the page was shown; its form is refused, with who moved it.
    go("/ui/models/org/tiny")
    cli("alias", "set", "org/tiny", "prod", "2")
    submit(alias_row("prod").find_element(By.CSS_SELECTOR, "form.rollback button"))
    error = text("#error")
    check("points to 2" in error and "expected it to point to 1" in error, f"stale form answered: {error}")
    check(alias_targets("org/tiny")["prod"] == "2", "a stale form moved prod")
    shot("model-stale")

    # A form whose CSRF token is not the session's is refused.
    driver.execute_script("document.querySelector(\"tr[data-alias='prod'] form.rollback input[name=csrf]\").value='x'")
    submit(alias_row("prod").find_element(By.CSS_SELECTOR, "form.rollback button"))
    check("not from your current session" in text("#error-message"), "a forged form was not refused")
    check(alias_targets("org/tiny")["prod"] == "2", "a forged form moved prod")

    # Deprecate version 1 with a reason.
    go("/ui/models/org/tiny")
    form = driver.find_element(By.CSS_SELECTOR, "section[data-version='1'] form.deprecate")
    form.find_element(By.NAME, "reason").send_keys("superseded by 2")
    submit(form.find_element(By.TAG_NAME, "button"))
    check("org/tiny:1 is deprecated" in text("#notice"), "no deprecation notice")
    versions = json.loads(cli("ls", "org/tiny", "--json"))
    versions = versions["versions"] if isinstance(versions, dict) else versions
    reason = next(v for v in versions if v["name"] == "1").get("deprecation", {}).get("reason")
    check(reason == "superseded by 2", f"the CLI sees the reason {reason}")

    # Move an alias to a version, and create one; creating it again is refused, as it exists now.
    go("/ui/models/org/tiny")
    form = alias_row("canary").find_element(By.CSS_SELECTOR, "form.move")
    Select(form.find_element(By.NAME, "version")).select_by_visible_text("1")
    submit(form.find_element(By.TAG_NAME, "button"))
    check(alias_targets("org/tiny")["canary"] == "1", "the move form did not move canary")
    for attempt in range(2):
        form = driver.find_element(By.CSS_SELECTOR, "form.new-alias")
        form.find_element(By.NAME, "alias").send_keys("staging")
        Select(form.find_element(By.NAME, "version")).select_by_visible_text("2" if attempt == 0 else "1")
        submit(form.find_element(By.TAG_NAME, "button"))
    check("expected it not to exist" in text("#error"), "a second create of staging was not refused")
    check(alias_targets("org/tiny")["staging"] == "2", "staging was not created at 2, or was moved")

    # The variant page shows the card rendered; the hostile model's strings stay text everywhere.
    go("/ui/models/org/tiny/versions/1/variants/default")
    check(text("#card h3") == "Tiny", "the card's heading is not rendered")
    shot("variant")
    go("/ui/models/hostile")
    no_injected_markup("hostile model")
    check("<script>alert('reason')</script>" in driver.find_element(By.TAG_NAME, "main").text,
          "the hostile reason is not shown as text")
    go("/ui/models/hostile/versions/1/variants/default")
    no_injected_markup("hostile variant")
    files = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#files td.path")]
    check("<img src=x onerror=alert(1)>.txt" in files, f"the hostile file name is not shown as text: {files}")
    card = text("#card")
    check("<script>alert('card')</script>" in card, f"the card's script is not shown as text: {card}")
    check(not driver.find_elements(By.CSS_SELECTOR, "#card a"), "the card's javascript: link became a link")
    shot("variant-hostile")

    # The audit log is for admins, as in the API.
    go("/ui/audit")
    check("needs admin" in text("#error-message"), "a write token read the audit log")
    sign_out()
    check("/ui/sign-in" in driver.current_url, f"after sign-out: {driver.current_url}")
    sign_in("admin")
    go("/ui/audit?model=org%2Ftiny")
    actions = [row.find_elements(By.TAG_NAME, "td")[3].text
               for row in driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    check(actions[:6] == ["alias.set", "alias.set", "deprecate", "alias.set", "alias.rollback", "alias.promote"],
          f"audit actions, newest first: {actions}")
    shot("audit")

    # A read token sees the pages but no form that changes anything.
    sign_out()
    sign_in("read")
    go("/ui/models/org/tiny")
    forms = driver.find_elements(By.CSS_SELECTOR, "form[method=post]")
    check(len(forms) == 1, f"a read token sees {len(forms)} forms that post (only sign-out expected)")

    # A phone's width: nothing wider than the screen (tables scroll inside their own box).
    driver.set_window_size(390, 844)
    for path in ("/ui", "/ui/models/org/tiny", "/ui/models/org/tiny/versions/2/variants/awq-int4"):
        go(path)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        check(overflow <= 1, f"{path} is {overflow}px wider than a phone")
    shot("model-phone")

    # Without JavaScript: the filter filters on submit, the copy buttons stay hidden, the forms still work.
    driver.quit()
    driver = browser(javascript=False)
    sign_in("write")
    go("/ui?q=host")
    names = [row.get_attribute("data-name") for row in driver.find_elements(By.CSS_SELECTOR, "#catalogue tbody tr")]
    check(names == ["hostile"], f"the filter without JavaScript shows {names}")
    go("/ui/models/org/tiny")
    check(not driver.find_element(By.CSS_SELECTOR, "button.copy").is_displayed(), "a copy button without JavaScript")
    form = alias_row("prod").find_element(By.CSS_SELECTOR, "form.promote")
    Select(form.find_element(By.NAME, "from")).select_by_visible_text("canary")
    submit(form.find_element(By.TAG_NAME, "button"))
    check(alias_targets("org/tiny")["prod"] == "1", "the promotion from canary without JavaScript failed")
    check("org/tiny@prod points to 1" in text("#notice"), "no notice without JavaScript")
    shot("model-no-javascript")
    print("ok")
except UnexpectedAlertPresentException as alert:
    print(f"a script ran: an alert opened: {alert.alert_text}", file=sys.stderr)
    sys.exit(1)
except Exception as failure:
    shot("failure")
    main = driver.find_elements(By.TAG_NAME, "main")
    shown = main[0].text[:2000] if main else driver.page_source[:2000]
    print(f"{type(failure).__name__}: {failure}\nat {driver.current_url}, showing:\n{shown}", file=sys.stderr)
    sys.exit(1)
finally:
    driver.quit()
