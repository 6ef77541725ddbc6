'use strict';
/* For bench/milter-pgp-pem/run: opens each page (argv: chromium, password,
   iterations, page files...) RUNS times in headless Chromium and prints one
   JSON line per page: the time from Enter to the message shown, and the
   time of the PBKDF2 derivation alone (WebCrypto, same page, same count). */
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', '..', 'tests', 'browser', 'node_modules', 'playwright-core'));

(async () => {
  const [exe, password, iter, runs, ...files] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox'], timeout: 120000 });
  for (const file of files) {
    const open = [], kdf = [], marks = [];
    for (let i = 0; i < Number(runs); i++) {
      const page = await browser.newPage();
      await page.goto('file://' + file, { timeout: 120000 });
      await page.fill('#mw-password', password);
      const t = Date.now();
      await page.press('#mw-password', 'Enter');
      while (!(await page.evaluate(() => !document.getElementById('mw-message').hidden))) await new Promise((r) => setTimeout(r, 5));
      open.push(Date.now() - t);
      marks.push(await page.evaluate(() => {
        const m = {};
        for (const e of performance.getEntriesByType('mark')) m[e.name] = e.startTime;
        return { parse: m['mw-parsed'] - m['mw-start'], kdf: m['mw-key'] - m['mw-parsed'],
          decrypt: m['mw-decrypted'] - m['mw-key'], mime_and_show: m['mw-shown'] - m['mw-decrypted'] };
      }));
      /* CDP evaluation is not subject to the page's CSP. */
      kdf.push(await page.evaluate(async (n) => {
        const t0 = performance.now();
        const base = await crypto.subtle.importKey('raw', new TextEncoder().encode('x'), 'PBKDF2', false, ['deriveBits']);
        await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(16), iterations: n }, base, 256);
        return performance.now() - t0;
      }, Number(iter)));
      await page.close();
    }
    process.stdout.write(JSON.stringify({ file, open, kdf, marks }) + '\n');
  }
  await browser.close();
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
