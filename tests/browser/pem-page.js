'use strict';
/* Drives Debian's chromium through the self-decrypting page: reads a JSON
   job on stdin ({chromium, outdir, cases: [...]}) and writes one JSON line
   of observations per case on stdout. The checks are made by the caller
   (tests/milter-pgp/pem-browser.py). Every request any page makes is
   recorded (the page must make none). */
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/* waitForFunction evaluates a string in the page, which the page's CSP
   forbids (no 'unsafe-eval'): poll from here instead. */
async function until(page, fn, ms) {
  const end = Date.now() + ms;
  while (!(await page.evaluate(fn))) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + fn);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runCase(browser, job, c) {
  const ctx = await browser.newContext({ acceptDownloads: true });
  /* Every request any frame starts, unless the page's CSP blocked it before
     it left (Chromium may still report those, failed with
     ERR_BLOCKED_BY_CSP). Routing alone misses requests from srcdoc frames. */
  const started = [], blocked = new Set();
  ctx.on('request', (r) => started.push(r));
  const failures = [];
  ctx.on('requestfailed', (r) => {
    const why = (r.failure() && r.failure().errorText) || '';
    failures.push(r.url() + ' ' + why);
    if (/ERR_BLOCKED_BY_CSP|csp/i.test(why)) blocked.add(r);
  });
  const routed = [];
  await ctx.route('**/*', (route) => { routed.push(route.request().url()); route.continue(); });
  const page = await ctx.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const url = 'file://' + c.file;
  const res = { name: c.name };
  const t0 = Date.now();
  await page.goto(url, { timeout: 120000 });
  res.loadMs = Date.now() - t0;
  res.focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  res.label = await page.evaluate(() => {
    const l = document.querySelector('label[for="mw-password"]');
    return l ? l.textContent : null;
  });
  await page.fill('#mw-password', c.password);
  const t1 = Date.now();
  if (c.enter) await page.press('#mw-password', 'Enter');
  else await page.click('#mw-open');
  /* Done when the message shows or the error does. */
  await until(page, () => !document.getElementById('mw-message').hidden ||
    document.getElementById('mw-status').classList.contains('error'), 120000);
  res.openMs = Date.now() - t1;
  Object.assign(res, await page.evaluate(() => ({
    opened: !document.getElementById('mw-message').hidden,
    status: document.getElementById('mw-status').textContent,
    text: document.getElementById('mw-text').textContent,
    headers: document.getElementById('mw-headers').textContent,
    files: Array.from(document.querySelectorAll('#mw-files a')).map((a) => a.download),
    htmlShown: !document.getElementById('mw-html-box').hidden,
    iframeSandbox: document.getElementById('mw-html').getAttribute('sandbox'),
    bodyText: document.body.innerText,
  })));
  if (res.opened && res.htmlShown) {
    const frame = page.frames().find((f) => f !== page.mainFrame());
    /* Give a script or an image every chance to run or load. */
    await page.waitForTimeout(1000);
    res.frameText = frame ? await frame.evaluate(() => document.body.innerText) : null;
  }
  if (res.opened && c.downloads) {
    res.saved = [];
    for (const name of res.files) {
      const [dl] = await Promise.all([page.waitForEvent('download'),
        page.click(`#mw-files a[download="${name.replace(/"/g, '\\"')}"]`)]);
      const to = path.join(job.outdir, c.name + '-' + name);
      await dl.saveAs(to);
      res.saved.push(to);
    }
  }
  if (res.opened && c.reply) {
    await page.fill('#mw-reply-text', c.reply.text);
    if (c.reply.files) await page.setInputFiles('#mw-reply-files', c.reply.files);
    await page.click('#mw-reply-make');
    await until(page, () => !document.getElementById('mw-reply-links').hidden, 120000);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#mw-reply-download')]);
    res.replyFile = path.join(job.outdir, c.name + '-reply.html');
    await dl.saveAs(res.replyFile);
    res.mailto = await page.getAttribute('#mw-reply-mail', 'href');
    res.mailtoHidden = await page.evaluate(() => document.getElementById('mw-reply-mail').hidden);
  }
  await page.waitForTimeout(200);
  res.failures = failures;
  res.requests = started.filter((r) => !blocked.has(r)).map((r) => r.url()).concat(routed);
  res.consoleErrors = consoleErrors;
  await ctx.close();
  return res;
}

(async () => {
  const job = await readStdin();
  const browser = await chromium.launch({ executablePath: job.chromium, args: ['--no-sandbox'], timeout: 120000 });
  try {
    for (const c of job.cases) {
      let res;
      try {
        res = await runCase(browser, job, c);
      } catch (e) {
        res = { name: c.name, error: String(e && e.stack || e) };
      }
      process.stdout.write(JSON.stringify(res) + '\n');
    }
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
