// console_browser.js BASE OUT CANDIDATE -- the console in a real browser (Debian's chromium
// driven by npm playwright-core; NODE_PATH finds it): an operator logs in and looks at every
// page; the daemon's own login and a reporter's try to decide CANDIDATE and are refused by
// the database; a form posted without its CSRF token is refused; a report with HTML in its
// text shows as text; then the operator approves CANDIDATE with a reason, cancels the
// promotion that queued and rejects a report group.  A screenshot of each page goes to OUT.  Exits 1 with "FAIL: ..." at the first thing that does not hold;
// test_console.sh checks the database afterwards.
'use strict';
const { chromium } = require('playwright-core');

const [base, out, cand] = process.argv.slice(2);
function fail(msg) { throw new Error('FAIL: ' + msg); }
const dialogs = []; // a script that ran would show here (alert)

async function login(browser, user, password) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(base + '/login');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
}

// decide -- fill the candidate's form and submit it; the answer's status
async function decide(page, decision, note) {
  await page.goto(`${base}/candidate/${cand}`);
  if (!(await page.$('form.decide'))) fail(`no decision form on candidate ${cand}`);
  await page.fill('form.decide textarea[name=note]', note);
  await page.check('form.decide input[name=confirm]');
  const [res] = await Promise.all([
    page.waitForNavigation(),
    page.click(`form.decide button[value=${decision}]`),
  ]);
  return res.status();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  try {
    // nothing but the login page without a session
    {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(base + '/');
      if (!page.url().endsWith('/login')) fail('/ without a session went to ' + page.url());
      await shot(page, 'login');
      await page.fill('input[name=login]', 'op_login');
      await page.fill('input[name=password]', 'not the password');
      await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
      if (!(await page.textContent('main')).includes('refused this login'))
        fail('a wrong password did not say so');
      await ctx.close();
    }

    // the daemon's login may read but not decide: the database refuses it
    const dm = await login(browser, 'dm_login', 'dm-passwd');
    let status = await decide(dm, 'approve', 'the daemon approving its own work');
    if (status !== 403 || !(await dm.textContent('main')).includes('permission denied'))
      fail(`the daemon's approval answered ${status}: ${await dm.textContent('main')}`);
    await shot(dm, 'refused-daemon');

    // a reporter may not even read a candidate; its POST (with its own CSRF token) is
    // refused by the database too
    const rp = await login(browser, 'rp_login', 'rp-passwd');
    await rp.goto(`${base}/candidate/${cand}`);
    if (!(await rp.textContent('main')).includes('permission denied'))
      fail('a reporter read a candidate');
    const rpCsrf = await rp.getAttribute('form.who input[name=csrf]', 'value');
    let res = await rp.request.post(`${base}/candidate/${cand}`, {
      form: { csrf: rpCsrf, decision: 'approve', note: 'a reporter approving', confirm: 'yes' },
      maxRedirects: 0,
    });
    if (res.status() !== 403 || !(await res.text()).includes('permission denied'))
      fail(`a reporter's approval answered ${res.status()}`);

    // the operator
    const op = await login(browser, 'op_login', 'op-passwd');
    if (!op.url().endsWith('/')) fail('after logging in: ' + op.url());
    const rows = await op.$$('table.langs tbody tr');
    if (rows.length < 2) fail(`the languages page lists ${rows.length} languages`);
    if ((await op.$$('table.langs svg.spark polyline')).length < rows.length)
      fail('a language has no sparkline');
    await shot(op, 'languages');
    const first = await op.textContent('table.langs tbody tr td a');
    await op.click('table.langs tbody tr td a');
    await op.waitForURL(`${base}/lang/${first}`);
    if (!(await op.$('svg.chart circle'))) fail('the language page has no history chart');
    await shot(op, 'language');
    await op.goto(base + '/candidates');
    await shot(op, 'candidates');

    // a form without its CSRF token is refused, and nothing is decided
    res = await op.request.post(`${base}/candidate/${cand}`, {
      form: { decision: 'approve', note: 'no token', confirm: 'yes' },
      maxRedirects: 0,
    });
    if (res.status() !== 403 || !(await res.text()).includes('CSRF'))
      fail(`a POST without its CSRF token answered ${res.status()}`);

    // the verdict: failing languages first, each interval drawn against its tolerance
    await op.goto(`${base}/candidate/${cand}`);
    const outcome = await op.textContent('table.verdict tbody tr td:nth-child(2)');
    if (outcome.trim() !== 'fail') fail('the first language of the verdict is ' + outcome);
    if (!(await op.$('table.verdict svg.iv line.tol'))) fail('no tolerance drawn');
    await shot(op, 'candidate');

    // reports: HTML in a report's text is text
    await op.goto(base + '/reports');
    const texts = await op.$$eval('td.text', (tds) => tds.map((t) => t.textContent));
    if (!texts.some((t) => t.includes('<script>alert("pwned")</script><b>bold</b>')))
      fail('the report with HTML is not shown as its text: ' + JSON.stringify(texts));
    if ((await op.$$('td.text b, td.text script')).length !== 0)
      fail('a report\'s HTML became markup');
    await shot(op, 'reports');

    // jobs: the table is fetched again while the page is open
    await op.goto(base + '/jobs');
    await op.waitForResponse((r) => r.url().endsWith('/jobs?fragment=1') && r.status() === 200,
                             { timeout: 10000 });
    await shot(op, 'jobs');

    // the operator approves, with a reason; who decided is shown
    status = await decide(op, 'approve', 'every language holds but aaa, accepted for the test');
    if (status !== 200) fail(`the approval answered ${status}`);
    const decision = await op.textContent('p.decision');
    if (!decision.includes('approve') || !decision.includes('op_login'))
      fail('after approving: ' + decision);
    if (await op.$('form.decide')) fail('the form is still there after the decision');
    await shot(op, 'candidate-approved');

    // the approval queued a promotion (the daemon waits as a standby): cancel it
    await op.goto(base + '/jobs');
    await Promise.all([op.waitForNavigation(), op.click('#jobs form button')]);
    if (!(await op.textContent('#jobs')).includes('cancelled by op_login'))
      fail('the job was not cancelled: ' + (await op.textContent('#jobs')));

    // a report group rejected with a reason
    await op.goto(base + '/reports');
    const form = 'table.reports tr:has(td.text:text("wrong language")) form';
    await op.fill(`${form} input[name=note]`, 'not a language problem');
    await Promise.all([op.waitForNavigation(), op.click(`${form} button[value=reject]`)]);
    if (!(await op.textContent('table.reports')).includes('op_login: not a language problem'))
      fail('the report was not rejected: ' + (await op.textContent('table.reports')));

    // logging out ends the session, from a reused page too (its token is filled in)
    await op.goto(base + '/');
    await Promise.all([op.waitForNavigation(), op.click('form.who button')]);
    if (!op.url().endsWith('/login')) fail('logging out from / went to ' + op.url());
    await op.goto(`${base}/candidate/${cand}`);
    if (!op.url().endsWith(`/login?next=/candidate/${cand}`))
      fail('after logging out a candidate went to ' + op.url());
    // and logging in again goes back where the person was going
    await op.fill('input[name=login]', 'op_login');
    await op.fill('input[name=password]', 'op-passwd');
    await Promise.all([op.waitForNavigation(), op.click('form.login button')]);
    if (!op.url().endsWith(`/candidate/${cand}`)) fail('after logging in again: ' + op.url());
    if (dialogs.length) fail('a script ran: ' + dialogs.join('; '));
    console.log('console_browser: every check held');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e.message.startsWith('FAIL') ? e.message : e);
  process.exit(1);
});
