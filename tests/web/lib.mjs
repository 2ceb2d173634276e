// What the browser tests share: launching Debian's chromium through
// playwright-core, talking to the API directly (to set up data quickly),
// waiting for conditions with deadlines (never fixed sleeps), steps that
// report what failed, screenshots and accessibility checks.

import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';

/** How long any one condition may take on a slow, loaded machine. */
export const TIMEOUT = 60_000;

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A headless chromium (a fresh profile of its own). */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A browser context (its own cookies) and a page in it, signed in with
 * `token` when given. Page errors and dialogs are recorded: a test checks
 * `page.problems` at the end.
 */
export async function openPage(browser, base, { token, viewport = DESKTOP, isMobile = false } = {}) {
  const context = await browser.newContext({ viewport, isMobile, hasTouch: isMobile, baseURL: base });
  context.setDefaultTimeout(TIMEOUT);
  if (token) {
    await context.addCookies([{ name: 'session', value: token, url: base, httpOnly: true, sameSite: 'Lax' }]);
  }
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    page.problems.push(`dialog: ${d.type()} ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[0-9]/.test(m.text()) && !/net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|CONNECTION_CLOSED)|WebSocket/.test(m.text())) {
      page.problems.push(`console: ${m.text()}`);
    }
  });
  return page;
}

/** Fails when the page had script errors, dialogs or console errors. */
export function assertNoProblems(page, name) {
  if (page.problems.length) throw new Error(`${name}: ${page.problems.join('; ')}`);
}

// ---- the API, for setting up data ----

/**
 * One request to the API; returns { status, body }. A `503` (a service not
 * yet subscribed while the roles start, or a full hashing queue: nothing
 * was written) is sent again after its `Retry-After`, as the API allows,
 * for at most a minute.
 */
export async function call(base, method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const deadline = Date.now() + 60_000;
  let response;
  for (;;) {
    response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status !== 503 || Date.now() > deadline) break;
    await response.text();
    const seconds = Number(response.headers.get('retry-after')) || 1;
    await new Promise((resolve) => setTimeout(resolve, Math.min(seconds, 2) * 250));
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = text;
  }
  return { status: response.status, body: json };
}

/** Like `call`, but the status must be `expected`; returns the body. */
export async function must(base, method, path, expected, options) {
  const { status, body } = await call(base, method, path, options);
  if (status !== expected) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** Registers `nickname` through the API; returns { token, id, nickname, password }. */
export async function register(base, nickname) {
  const password = `password-${nickname}`;
  const body = await must(base, 'POST', '/api/auth/register', 201, {
    body: {
      nickname, email: `${nickname}@example.org`, password,
      first_name: 'Test', last_name: 'User', age: 30, gender: 'unspecified',
    },
  });
  return { token: body.token, id: body.user.id, nickname, password };
}

/** A new session of an existing user; returns its token. */
export async function login(base, user) {
  const body = await must(base, 'POST', '/api/auth/login', 200, { body: { login: user.nickname, password: user.password } });
  return body.token;
}

// ---- waiting ----

/** Polls `check` until it returns a truthy value (returned) or the deadline. */
export async function until(check, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (let i = 0; ; i++) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(50 * (i + 1), 250)));
  }
}

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

/** Waits until the locator's text equals (or matches) `expected`. */
export async function expectText(locator, expected, what = String(expected)) {
  await until(async () => {
    const text = norm(await locator.textContent({ timeout: 2000 }));
    return expected instanceof RegExp ? expected.test(text) : text === expected;
  }, `text ${what}`);
}

/** Waits until the texts of the elements the locator matches are `expected`. */
export async function expectTexts(locator, expected, what = expected.join(', ')) {
  await until(async () => JSON.stringify(await texts(locator)) === JSON.stringify(expected), what);
}

/** Waits until the locator matches exactly `n` elements. */
export async function expectCount(locator, n, what = `${n} elements`) {
  await until(async () => (await locator.count()) === n, what);
}

/** Waits until the attribute has this value. */
export async function expectAttr(locator, name, value, what = `${name}=${value}`) {
  await until(async () => (await locator.getAttribute(name, { timeout: 2000 })) === value, what);
}

export const visible = (locator) => locator.waitFor({ state: 'visible' });
export const hidden = (locator) => locator.waitFor({ state: 'hidden' });

/** The texts of the elements the locator matches, whitespace collapsed. */
export async function texts(locator) {
  return (await locator.allTextContents()).map(norm);
}

/** The texts of a control's description (aria-describedby), joined. */
export async function description(locator) {
  return locator.evaluate((el) => (el.getAttribute('aria-describedby') || '')
    .split(/\s+/).filter(Boolean)
    .map((id) => (document.getElementById(id) || {}).textContent || '')
    .join(' ').replace(/\s+/g, ' ').trim());
}

// ---- requests ----

/**
 * Counts the page's requests whose URL matches `pattern`: how many, and the
 * most ever in flight at once.
 */
export function trackRequests(page, pattern) {
  const stats = { started: 0, finished: 0, inFlight: 0, maxInFlight: 0, urls: [] };
  const ours = (request) => pattern.test(request.url());
  const done = (request) => {
    if (!ours(request)) return;
    stats.finished += 1;
    stats.inFlight -= 1;
  };
  page.on('request', (request) => {
    if (!ours(request)) return;
    stats.started += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    stats.urls.push(request.url());
  });
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  return stats;
}

/** Keeps the last few answers to the page's requests matching `pattern` (for failure messages). */
export function recordResponses(page, pattern, keep = 5) {
  const answers = [];
  page.on('response', async (response) => {
    if (!pattern.test(response.url())) return;
    let body = '';
    try {
      body = await response.text();
    } catch (e) {
      body = `(${e.message})`;
    }
    answers.push(`${response.status()} ${response.url()} ${body.slice(0, 400)}`);
    if (answers.length > keep) answers.shift();
  });
  return answers;
}

// ---- accessibility and layout ----

const CONTROL = /^\s*- (button|link|textbox|checkbox|combobox|radio|spinbutton|searchbox|switch|slider|tab|menuitem)\b(?!\s+"[^"]+")/;

/** Fails when a visible control in the page has no accessible name. */
export async function assertControlsNamed(page, where) {
  const snapshot = await page.locator('body').ariaSnapshot();
  const unnamed = snapshot.split('\n').filter((line) => CONTROL.test(line));
  if (unnamed.length) throw new Error(`${where}: controls without an accessible name:\n${unnamed.join('\n')}`);
}

/** Fails when the page is wider than its viewport (a horizontal scroll). */
export async function assertNoHorizontalScroll(page, where) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  if (scroll > width + 1) throw new Error(`${where}: the page is ${scroll}px wide in a ${width}px viewport`);
}

/** Saves a screenshot to the screenshots folder (when one is given). */
export async function screenshot(page, name) {
  const dir = process.env.SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  // A passing toast would hide part of the picture.
  await page.locator('#toast').evaluate((el) => { el.hidden = true; }).catch(() => {});
  // No blinking caret or half-finished animation in the picture.
  await page.screenshot({ path: join(dir, `${name}.png`), animations: 'disabled', caret: 'hide' });
}

// ---- steps ----

let passed = 0;
const started = Date.now();

/** Runs one named step; on failure saves a screenshot of `pages` and rethrows. */
export async function step(name, pages, fn) {
  const t = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok ${passed} - ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.log(`not ok - ${name}: ${e.stack || e}`);
    const dir = process.env.FAILURES || '/tmp';
    const script = basename(process.argv[1] || 'web', '.mjs');
    for (const [i, page] of pages.entries()) {
      const path = join(dir, `web-${script}-failure-${i}.png`);
      try {
        await page.screenshot({ path, fullPage: true });
        console.log(`  screenshot of page ${i}: ${path}`);
      } catch (err) {
        // the page may be gone
      }
    }
    throw e;
  }
}

/** Prints the summary line. */
export function summary() {
  console.log(`# ${passed} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Runs `main`, exits 0 when it resolves, 1 with the error otherwise; a
 * global deadline ends a hung run.
 */
export function run(main, deadlineMs = 420_000) {
  const timer = setTimeout(() => {
    console.log(`not ok - the script did not finish within ${deadlineMs / 1000} s`);
    process.exit(2);
  }, deadlineMs);
  main().then(() => {
    clearTimeout(timer);
    summary();
    process.exit(0);
  }, (e) => {
    clearTimeout(timer);
    console.log(`FAILED: ${e.stack || e}`);
    process.exit(1);
  });
}
