// scripts/console-shots.js BASE LOGIN PASSWORD OUT PATH=NAME[:top]... -- log in to the
// console at BASE and save a full-page screenshot of each PATH as OUT/NAME.png (:top: its
// first 1280 x 900 only) (headless Debian
// chromium through npm playwright-core: NODE_PATH from scripts/console-ref).  The demo's.
'use strict';
const { chromium } = require('playwright-core');

const [base, login, password, out, ...pages] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(base + '/login');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
    if (page.url().endsWith('/login')) throw new Error('the console refused ' + login);
    for (const p of pages) {
      const [path, spec] = p.split('=');
      const [name, part] = spec.split(':');
      const res = await page.goto(base + path);
      if (res.status() !== 200) throw new Error(`${path} answered ${res.status()}`);
      await page.screenshot({ path: `${out}/${name}.png`, fullPage: part !== 'top' });
      console.log(`${out}/${name}.png`);
    }
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error('console-shots: ' + e.message);
  process.exit(1);
});
