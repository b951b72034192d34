// Drives the agent console in headless Chromium for the end-to-end test: sign in, join,
// watch, draw an arrow, wait for its 3D anchor. Speaks JSON lines: one object per step on
// stdout, commands from the test on stdin. Any failure prints {"step":"error"} and exits 1.
//
// With OUTREACH=1 it opens the outreach view instead of a session ({"step":"outreach"}).
// With HOSTILE_TEXT=1 it joins and reports how people's text is shown ({"step":"hostile"}).
// With SSO=1 it signs in through the identity provider's login form instead of with a token:
// first as "sam" (no Farsight role), then as "grace" ({"step":"refused"}, "signed-in",
// "signed-out").
// With CLEAR_UNDO=1 it draws an arrow beside a colleague's mark, is asked before Clear takes
// both, keeps them once, clears them, and brings them back with Ctrl+Z ({"step":"restored"}).
// With SIGNIN_TOKENS (a JSON list) it signs in with each and reports what the page says
// ({"step":"signin-errors"}).
// With ZOOM=1 it zooms in 2×, draws an arrow, and pans with Space held ({"step":"zoomed"}).
// With END_SESSION=<other session> it waits for a colleague to end the first session, then
// joins the other and ends it itself ({"step":"ended"}, {"step":"i-ended"}).
// With INVITE=1 it invites a colleague into the session and reports the token ({"step":"invited"}).
// With WEARER_GONE=1 it reports how long the page takes to say the wearer is gone ({"step":"shown"}).
// With BENCH_SECONDS set it only joins and reports capture → drawn and → painted delays ({"step":"delays"}).
//
// Environment: CONSOLE_URL, AGENT_TOKEN, SESSION_ID, SHOTS_DIR; BLOCK_UDP=1 sends the page's
// WebTransport to a UDP port that drops every datagram, as a firewall would, so the console
// must fall back to WebSocket.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync, readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import path from 'node:path';

const TIMEOUT_MS = 30_000;

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Commands arrive whenever the test is ready; keep them until a step asks.
const commands = [];
const waiters = [];
let stdinClosed = false;
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    emit({ step: 'console', text: `ignored a stdin line that is not JSON: ${line}` });
    return;
  }
  commands.push(command);
  waiters.splice(0).forEach((wake) => wake());
});
lines.on('close', () => {
  stdinClosed = true;
  waiters.splice(0).forEach((wake) => wake());
});

/** The first command named in `names` (one name or several). */
async function nextCommand(...names) {
  for (;;) {
    const index = commands.findIndex((c) => names.includes(c.cmd));
    if (index >= 0) return commands.splice(index, 1)[0];
    if (stdinClosed) throw new Error(`stdin closed while waiting for ${names.join(' or ')}`);
    await new Promise((wake) => waiters.push(wake));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The outreach view: needs, calls and the effect chart, as the page shows them.
async function outreach(page, shots) {
  await page.click('.views button[data-view="outreach"]');
  await page.waitForFunction(() => {
    const chart = document.querySelector('#report-chart');
    return (
      document.querySelectorAll('#needs tbody tr').length > 0 &&
      document.querySelectorAll('#calls tbody tr').length > 0 &&
      chart.complete &&
      chart.naturalWidth > 0
    );
  });
  const seen = await page.evaluate(() => {
    const first = document.querySelector('#needs tbody tr').cells;
    const chart = document.querySelector('#report-chart');
    return {
      first_need: { user: first[0].textContent, topic: first[1].textContent },
      needs: document.querySelectorAll('#needs tbody tr').length,
      calls: document.querySelectorAll('#calls tbody tr').length,
      planned: document.querySelector('[data-kpi="planned"]').textContent,
      chart: [chart.naturalWidth, chart.naturalHeight],
    };
  });
  await page.screenshot({ path: path.join(shots, 'outreach.png') });
  emit({ step: 'outreach', ...seen });
  await nextCommand('done');
}

// The benchmark: capture → painted delays over a window, after the picture has settled.
async function benchmark(page, seconds) {
  await sleep(1000);
  await page.evaluate(() => {
    window.farsightConsole.drawDelays.length = 0;
    window.farsightConsole.paintDelays.length = 0;
  });
  emit({ step: 'measuring' });
  await sleep(seconds * 1000);
  const samples = await page.evaluate(() => window.farsightConsole.paintDelays.slice());
  const drawn = await page.evaluate(() => window.farsightConsole.drawDelays.slice());
  const transport = await page.textContent('[data-stat="transport"]');
  const dropped = await page.textContent('[data-stat="dropped"]');
  emit({ step: 'delays', transport, dropped, samples, drawn });
}

// Text from other people (the session's name, a participant's, a text mark) carrying markup
// that would make elements and run script if the page parsed it as HTML.
async function hostileText(page) {
  // The text mark is replayed on joining and drawn on the overlay.
  await page.waitForFunction(() => {
    const c = document.querySelector('#marks');
    const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) return true;
    return false;
  });
  await sleep(500);
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'hostile-text.png') });
  const seen = await page.evaluate(() => ({
    ran: window.__farsightInjected ?? null,
    elements: document.querySelectorAll('[onerror], img[src="x"], script:not([src])').length,
    queue_name: document.querySelector('#queue .name')?.textContent,
    title: document.querySelector('#session-title')?.textContent,
    participants: document.querySelector('#participants')?.textContent,
  }));
  emit({ step: 'hostile', ...seen });
  await nextCommand('done');
}

// The test stops the wearer's stream, then closes its connection; each time the page must say
// so over the picture. Reports how long it took from the test's word, and the stats bar.
async function wearerGone(page) {
  await sleep(600); // the stats bar is redrawn every 250 ms
  emit({ step: 'watching', stats: (await page.textContent('#stats')).replace(/\s+/g, ' ').trim() });
  for (;;) {
    const { cmd, text } = await nextCommand('expect', 'done');
    if (cmd === 'done') return;
    const start = Date.now();
    await page.waitForFunction(
      (t) => {
        const banner = document.querySelector('#wearer-state');
        return !banner.hidden && banner.textContent === t;
      },
      text,
      { timeout: 10_000, polling: 50 },
    );
    const after_ms = Date.now() - start;
    const name = text.replace(/[^a-z]+/gi, '-').replace(/-$/, '');
    await page.screenshot({ path: path.join(env('SHOTS_DIR'), `${name}.png`) });
    const stats = (await page.textContent('#stats')).replace(/\s+/g, ' ').trim();
    emit({ step: 'shown', text, after_ms, stats });
  }
}

/** Joins `other`, then `first` again, each until it plays; reports the error toasts. */
async function switchSessions(page, first, other) {
  const drawn = () => page.evaluate(() => Number(document.querySelector('#video').dataset.framesDrawn ?? 0));
  const playing = async (session) => {
    const before = await drawn();
    await page.locator(`button.join[data-session="${session}"]`).click();
    await page.waitForFunction(
      ([s, n]) =>
        document.querySelector(`button.join[data-session="${s}"]`)?.textContent === 'Joined' &&
        document.querySelector('#video')?.dataset.frame !== '' &&
        Number(document.querySelector('#video')?.dataset.framesDrawn ?? 0) >= n,
      [session, before + 5],
    );
    emit({ step: 'playing', session });
  };
  emit({ step: 'switching', from: first, to: other });
  await playing(other);
  await playing(first);
  await sleep(500);
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'switched-back.png') });
  const errors = await page.$$eval('#toast .item.error', (items) => items.map((i) => i.textContent));
  const title = await page.textContent('#session-title');
  emit({ step: 'switched', errors, title });
}

// At 2× about the middle, an arrow from 40 %/40 % to 60 %/55 % of the (enlarged) picture
// must reach the wearable with those coordinates; a drag with Space held pans, drawing nothing.
async function zoomAndDraw(page) {
  await page.keyboard.press('+');
  const box = await page.locator('#marks').boundingBox();
  const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
  await page.keyboard.press('a');
  await page.mouse.move(...at(0.4, 0.4));
  await page.mouse.down();
  await page.mouse.move(...at(0.6, 0.55), { steps: 4 });
  await page.mouse.up();
  const annotate = await page.waitForFunction(() => window.farsightConsole?.lastAnnotate).then((h) => h.jsonValue());
  const zoomed = await page.evaluate(() => document.querySelector('#frame').style.transform);
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'zoomed.png') });
  await page.keyboard.down(' ');
  await page.mouse.move(...at(0.5, 0.5));
  await page.mouse.down();
  await page.mouse.move(...at(0.5, 0.5).map((v, i) => v + (i ? 40 : 100)), { steps: 4 });
  await page.mouse.up();
  await page.keyboard.up(' ');
  const panned = await page.evaluate(() => document.querySelector('#frame').style.transform);
  const last = await page.evaluate(() => window.farsightConsole.lastAnnotate.id);
  emit({ step: 'zoomed', annotate, zoomed, panned, drew_while_panning: last !== annotate.id });
  await nextCommand('done');
}

async function invite(page) {
  await page.click('#invite');
  await page.locator('#invitation').waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'invitation.png') });
  const token = await page.inputValue('#invitation-token');
  emit({ step: 'invited', token, text: await page.textContent('#invitation-text') });
  await nextCommand('done');
}

const banner = (page, text) =>
  page.waitForFunction((t) => {
    const b = document.querySelector('#wearer-state');
    return !b.hidden && b.textContent === t;
  }, text);

async function endSessions(page, first, other) {
  emit({ step: 'watching' });
  await nextCommand('ended-by-other');
  await banner(page, 'session ended');
  await page.waitForFunction((s) => !document.querySelector(`button.join[data-session="${s}"]`), first);
  emit({ step: 'ended', end_button: await page.isVisible('#end-session') });

  const before = await page.evaluate(() => Number(document.querySelector('#video').dataset.framesDrawn));
  await page.locator(`button.join[data-session="${other}"]`).click();
  await page.waitForFunction(
    (n) => Number(document.querySelector('#video').dataset.framesDrawn) >= n,
    before + 5,
  );
  await page.click('#end-session');
  await page.locator('#confirm').waitFor({ state: 'visible' });
  const question = await page.textContent('#confirm-text');
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'end-asked.png') });
  await page.keyboard.press('Enter');
  await banner(page, 'session ended');
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'ended.png') });
  emit({ step: 'i-ended', question });
  await nextCommand('done');
}

const anchoredMarks = (page, n) =>
  page.waitForFunction((count) => window.farsightConsole.marks.length === count, n);

async function clearAndUndo(page) {
  await anchoredMarks(page, 1); // the colleague's, anchored by the wearable
  await page.keyboard.press('a');
  await page.keyboard.press('3'); // green
  await page.keyboard.press(']'); // thicker: 8 pt
  const box = await page.locator('#marks').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.4, { steps: 4 });
  await page.mouse.up();
  await anchoredMarks(page, 2);
  await page.keyboard.press('x');
  await page.locator('#confirm').waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'asked.png') });
  emit({ step: 'asked', text: await page.textContent('#confirm-text') });
  await page.keyboard.press('Escape');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  await sleep(300);
  const list = await page.$$eval('#mark-list li', (items) => items.map((i) => i.textContent));
  emit({ step: 'kept', marks: await page.evaluate(() => window.farsightConsole.marks.length), list });
  await page.keyboard.press('x');
  await page.keyboard.press('Enter');
  await anchoredMarks(page, 0);
  await page.keyboard.press('Control+z');
  await anchoredMarks(page, 2);
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'restored.png') });
  emit({ step: 'restored' });
  await nextCommand('done');
}

async function signinErrors(page, tokens) {
  const texts = [];
  for (const token of tokens) {
    const before = await page.textContent('#signin-error');
    await page.fill('#token', token);
    await page.click('#signin button[type="submit"]');
    // Each token here is refused for another reason, so the words change.
    await page.waitForFunction((old) => {
      const text = document.querySelector('#signin-error').textContent;
      return text !== '' && text !== old;
    }, before);
    texts.push(await page.textContent('#signin-error'));
  }
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'signin-error.png') });
  emit({ step: 'signin-errors', texts });
  await nextCommand('done');
}

// Through the console's single sign-on button and the provider's development login form.
async function ssoSignIn(page, url, login) {
  await page.goto(url);
  await page.locator('#sso').click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button.login-submit').click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

async function singleSignOn(browser, page, url, session) {
  // An account without a Farsight group, in a browser context of its own.
  const stranger = await browser.newPage();
  stranger.setDefaultTimeout(TIMEOUT_MS);
  await ssoSignIn(stranger, url, 'sam');
  await stranger.locator('#signin-error').waitFor({ state: 'visible' });
  await stranger.screenshot({ path: path.join(env('SHOTS_DIR'), 'refused.png') });
  emit({ step: 'refused', text: await stranger.textContent('#signin-error') });
  await stranger.close();

  await ssoSignIn(page, url, 'grace');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator(`button.join[data-session="${session}"]`).click();
  await page.waitForFunction(() => Number(document.querySelector('#video')?.dataset.framesDrawn ?? 0) >= 5);
  await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'signed-in.png') });
  const cookie = (await page.context().cookies()).find((c) => c.name === 'farsight_session');
  const seen = await page.evaluate(() => ({
    page_sees_cookie: document.cookie.includes('farsight_session'),
    stored: sessionStorage.getItem('farsight.token'),
  }));
  emit({
    step: 'signed-in',
    me: await page.textContent('#me'),
    cookie: cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite },
    ...seen,
  });

  await nextCommand('sign-out');
  const loggedOut = page.waitForResponse((r) => r.url().endsWith('/v1/auth/logout'));
  await page.click('#signout');
  const logout = await loggedOut;
  const sentCookie = Boolean((await logout.request().allHeaders()).cookie?.includes('farsight_session='));
  await page.locator('#signin-view').waitFor({ state: 'visible' });
  await page.waitForFunction(async () => (await fetch('/v1/auth/ticket', { method: 'POST' })).status === 401);
  emit({ step: 'signed-out', logout_status: logout.status(), sent_cookie: sentCookie });
  await nextCommand('done');
}

// Points the page's WebTransport at a socket that reads nothing and answers nothing.
async function blockUdp(page) {
  const sink = dgram.createSocket('udp4');
  await new Promise((resolve) => sink.bind(0, '127.0.0.1', resolve));
  const port = sink.address().port;
  await page.route('**/v1/console/config', async (route) => {
    const response = await route.fetch();
    const config = await response.json();
    if (config.webtransport) config.webtransport.port = port;
    await route.fulfill({ response, json: config });
  });
}

async function main(browser) {
  const url = env('CONSOLE_URL');
  const token = process.env.SSO === '1' || process.env.SIGNIN_TOKENS ? null : env('AGENT_TOKEN');
  const session = env('SESSION_ID');
  const shots = env('SHOTS_DIR');
  mkdirSync(shots, { recursive: true });

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on('console', (message) => {
    if (message.type() === 'error') emit({ step: 'console', text: message.text() });
  });
  page.on('pageerror', (error) => emit({ step: 'console', text: String(error?.stack ?? error) }));
  if (process.env.BLOCK_UDP === '1') await blockUdp(page);
  if (process.env.SSO === '1') return singleSignOn(browser, page, url, session);

  // 1. Sign in, join, watch.
  await page.goto(url);
  if (process.env.SIGNIN_TOKENS) return signinErrors(page, JSON.parse(process.env.SIGNIN_TOKENS));
  await page.fill('#token', token);
  await page.click('#signin button[type="submit"]');
  await page.locator('#app').waitFor({ state: 'visible' });
  if (process.env.OUTREACH === '1') return outreach(page, shots);
  const join = page.locator(`button.join[data-session="${session}"]`);
  await join.waitFor({ state: 'visible' });
  await join.click();
  await page.waitForFunction(() => Number(document.querySelector('#video')?.dataset.framesDrawn ?? 0) >= 10);

  if (process.env.BENCH_SECONDS) return benchmark(page, Number(process.env.BENCH_SECONDS));
  if (process.env.SWITCH_SESSION) return switchSessions(page, session, process.env.SWITCH_SESSION);
  if (process.env.HOSTILE_TEXT === '1') return hostileText(page);
  if (process.env.WEARER_GONE === '1') return wearerGone(page);
  if (process.env.CLEAR_UNDO === '1') return clearAndUndo(page);
  if (process.env.ZOOM === '1') return zoomAndDraw(page);
  if (process.env.INVITE === '1') return invite(page);
  if (process.env.END_SESSION) return endSessions(page, session, process.env.END_SESSION);

  const video = page.locator('#video');
  await video.screenshot({ path: path.join(shots, 'video-1.png') });
  await page.evaluate(() => {
    const c = document.querySelector('#video');
    window.__firstPixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  });
  await sleep(500);
  await video.screenshot({ path: path.join(shots, 'video-2.png') });
  const { frames, differing } = await page.evaluate(() => {
    const c = document.querySelector('#video');
    const now = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const before = window.__firstPixels;
    let count = 0;
    const n = Math.min(now.length, before.length);
    for (let i = 0; i < n; i++) if (now[i] !== before[i]) count += 1;
    count += Math.abs(now.length - before.length);
    delete window.__firstPixels;
    return { frames: Number(c.dataset.framesDrawn), differing: count };
  });
  const transport = await page.textContent('[data-stat="transport"]');
  const participants = (await page.textContent('#participants')).replace(/\s+/g, ' ').trim();
  emit({ step: 'video', frames, differing_bytes: differing, transport, participants });
  emit({ step: 'stats', text: (await page.textContent('#stats')).replace(/\s+/g, ' ').trim() });

  // 2. Draw an arrow from 30 %/40 % to 60 %/55 % of the overlay.
  await page.keyboard.press('a');
  const box = await page.locator('#marks').boundingBox();
  if (!box) throw new Error('#marks has no box');
  const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
  await page.mouse.move(...at(0.3, 0.4));
  await page.mouse.down();
  for (let i = 1; i <= 5; i++) await page.mouse.move(...at(0.3 + 0.06 * i, 0.4 + 0.03 * i));
  await page.mouse.up();
  const annotate = await page.waitForFunction(() => window.farsightConsole?.lastAnnotate).then((h) => h.jsonValue());
  emit({ step: 'arrow', annotate, expected: [[0.3, 0.4], [0.6, 0.55]] });

  // 3. The wearable anchors it; once the head has moved, freeze and report where it projects.
  const { id } = await nextCommand('await-anchor');
  await page.waitForFunction((markId) => window.farsightConsole.marks.some((m) => m.id === markId), id, {
    timeout: TIMEOUT_MS,
  });
  // The test says when to freeze: the displayed frame must show the head moved far enough to
  // tell a re-projection from a mark left where it was drawn. If the frozen frame is still
  // too close, the test unfreezes and asks again.
  emit({ step: 'marked', id });
  for (;;) {
    const { cmd } = await nextCommand('freeze', 'unfreeze', 'tools');
    if (cmd === 'tools') break;
    await page.keyboard.press('f');
    if (cmd === 'unfreeze') {
      emit({ step: 'unfrozen' });
      continue;
    }
    await sleep(200);
    const anchored = await page.evaluate((markId) => {
      const mark = window.farsightConsole.marks.find((m) => m.id === markId);
      const video = document.querySelector('#video');
      const overlay = document.querySelector('#marks');
      const head = mark.points.at(-1);
      // Image pixels to overlay pixels (the two canvases need not share a resolution).
      const x = Math.floor((head[0] * overlay.width) / video.width);
      const y = Math.floor((head[1] * overlay.height) / video.height);
      const inside = x >= 0 && y >= 0 && x < overlay.width && y < overlay.height;
      const rgba = inside ? [...overlay.getContext('2d').getImageData(x, y, 1, 1).data] : null;
      return { frame: Number(video.dataset.frame), points: mark.points, rgba };
    }, id);
    emit({ step: 'anchored', frame: anchored.frame, points: anchored.points });
    await page.screenshot({ path: path.join(shots, 'anchored.png') });
    emit({ step: 'pixels', head_rgba: anchored.rgba });
  }

  // 4. The other tools: unfreeze, circle, ink, a text label, undo (erases the label), clear.
  await page.keyboard.press('f');
  await page.keyboard.press('c');
  await page.mouse.move(...at(0.5, 0.5));
  await page.mouse.down();
  await page.mouse.move(...at(0.55, 0.5), { steps: 4 });
  await page.mouse.up();
  await page.keyboard.press('i');
  await page.mouse.move(...at(0.2, 0.2));
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) await page.mouse.move(...at(0.2 + 0.02 * i, 0.2 + 0.01 * (i % 3)));
  await page.mouse.up();
  await page.keyboard.press('t');
  await page.mouse.click(...at(0.2, 0.7));
  await page.locator('#label-input').waitFor({ state: 'visible' });
  await page.keyboard.type('open here');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Control+z');
  await page.keyboard.press('x');
  // Two arrows; a click selects the first, Delete erases it (not the last drawn).
  await page.keyboard.press('a');
  for (const y of [0.3, 0.6]) {
    await page.mouse.move(...at(0.3, y));
    await page.mouse.down();
    await page.mouse.move(...at(0.45, y), { steps: 4 });
    await page.mouse.up();
  }
  await page.mouse.click(...at(0.375, 0.3));
  await page.keyboard.press('Delete');
  // The snapshot downloads the picture with its marks as PNG.
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('s')]);
  const saved = path.join(shots, 'snapshot.png');
  await download.saveAs(saved);
  const png = readFileSync(saved);
  const signature = png.subarray(0, 8).toString('hex');
  emit({
    step: 'tools',
    snapshot: { signature, width: png.readUInt32BE(16), height: png.readUInt32BE(20) },
  });

  // 5. Stay up until the test is done with the session.
  await nextCommand('done');
}

let browser;
let code = 0;
try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await main(browser);
} catch (error) {
  // What the page showed when it failed, for a person to look at.
  for (const page of browser?.contexts().flatMap((c) => c.pages()) ?? []) {
    await page.screenshot({ path: path.join(env('SHOTS_DIR'), 'failed.png') }).catch(() => {});
  }
  emit({ step: 'error', message: String(error?.message ?? error) });
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  lines.close();
}
process.exit(code);
