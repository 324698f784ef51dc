// The operator's page ({base}/status) in headless Chromium, against the real
// server under a base path with a fake HTTP provider: the counts match the
// API, the joins/s and p99 charts draw from /metrics while joins run, the
// page shows the server going away and recovers when it is back. A
// screenshot goes to $VB_BUILD_DIR/artifacts/status.png.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  BASE, log, check, requireBinaries, startServer, api, until, fakeProvider, launchBrowser,
  screenshot, run,
} = require('./harness');

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-status-'));
  const dataDir = path.join(tmp, 'data');
  let server = null;
  let browser = null;
  let fake = null;
  let joining = true;
  try {
    server = await startServer(dataDir, 0, 0);
    fake = await fakeProvider();
    const reg = await api(server.port, 'POST', '/api/bots/providers/register', {
      name: 'fake', base_url: fake.base_url, bots: [{ name: 'echo' }, { name: 'greeter' }],
    });
    check(reg.status === 200, 'the fake provider registered');
    const lobbies = [];
    for (const name of ['status one', 'status two']) {
      const r = await api(server.port, 'POST', '/api/lobby', { name });
      lobbies.push(r.body.id);
    }
    // Joins keep coming while the page watches (two a poll, about).
    let n = 0;
    const joins = (async () => {
      while (joining) {
        const port = server.port;
        await api(port, 'POST', '/api/bots/echo/join', { lobby_id: lobbies[n % 2], nick: `e${n}` }).catch(() => {});
        n++;
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.setDefaultTimeout(20000);
    await page.goto(`http://127.0.0.1:${server.port}${BASE}/status`);
    await page.locator('#scrape.ok').waitFor();
    await page.locator('#providers-online', { hasText: '1' }).waitFor();
    check(await page.textContent('#providers-unreachable') === '0', 'no provider unreachable');
    await page.waitForFunction(() => document.querySelector('#lobbies').textContent === '2');
    check(true, 'two lobbies, as the API lists');

    // Charts: joins per second above 0, a p99 value, journal appends.
    await page.waitForFunction(() => window.statusCharts.joins.points >= 5
      && window.statusCharts.joins.series[0].values.some((v) => v > 0));
    check(true, 'the joins/s chart has points above 0');
    await page.waitForFunction(() => window.statusCharts.p99.series[0].values.some((v) => v !== null && v > 0));
    const p99 = await page.textContent('#chart-p99 .now');
    check(/^[0-9.,]+$/.test(p99), `p99 join latency shown (${p99} ms)`);
    await page.waitForFunction(() => window.statusCharts.writes.series[0].values.some((v) => v > 0));
    check(true, 'journal appends per second drawn');
    check(await page.locator('#chart-joins svg path.line').count() === 1, 'the joins chart is an SVG line');

    // Members as the API counts them, once the joins stop.
    joining = false;
    await joins;
    const total = async () => {
      let m = 0;
      for (const id of lobbies) m += (await api(server.port, 'GET', `/api/lobby/${id}`)).body.sessions.length;
      return m;
    };
    const members = await total();
    await page.waitForFunction((m) => document.querySelector('#members').textContent === String(m), members);
    check(Number(await page.textContent('#members')) === members, `members match the API (${members})`);
    await screenshot(page, 'status.png');

    // The server goes away: the page says so, and recovers by itself.
    const port = server.port;
    await server.kill('SIGKILL');
    await page.locator('#scrape.bad').waitFor();
    check(/no answer/.test(await page.textContent('#scrape')), 'the page shows the scrape failing');
    server = await startServer(dataDir, port, 0);
    await page.locator('#scrape.ok').waitFor();
    await page.waitForFunction(() => document.querySelector('#lobbies').textContent === '2');
    check(true, 'the page recovered after the restart');
    check(pageErrors.length === 0, `no script errors on the page ${pageErrors.join('; ')}`);
  } finally {
    joining = false;
    if (browser) await browser.close().catch(() => {});
    if (server) await server.kill('SIGKILL');
    if (fake) await fake.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

run(main);
