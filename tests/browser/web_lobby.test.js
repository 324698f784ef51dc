// The lobby page in a real browser: headless Debian Chromium driven by
// playwright-core, against the real voicebot-server under a base path.
//
//   node web_lobby.test.js voicebot-provider
//       with the real voicebot-provider (CAF): echo answers chat, greeter
//       greets; skipped (exit 77) while the binary is not built
//   node web_lobby.test.js http-provider
//       with a fake provider of the original HTTP protocol, in this process
//   node web_lobby.test.js proxy
//       the same, with the page opened through Debian's nginx over HTTPS
//       (the shipped conf/nginx/voicebot-server.conf, a self-signed
//       certificate; tests/integration/nginx_proxy.py), WebSocket included;
//       skipped (77) without nginx or openssl
//
// Scenario: open the page, create a lobby, add the echo bot (a double click
// adds it once), see it among the members, chat (and see the echo with the
// real provider); kill the server, add the greeter while it is down, start
// the server again on the same port and data dir: the page retries, the
// join succeeds and the page shows it. A screenshot is saved under
// $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  BASE, PROVIDER, log, skip, check, requireBinaries, Proc, startServer: start, api, until, fakeProvider,
  launchBrowser, screenshot, run,
} = require('./harness');

const mode = process.argv[2] === 'voicebot-provider' ? 'provider'
  : process.argv[2] === 'proxy' ? 'proxy' : 'http';

// Through the proxy: the server believes nginx's forwarded headers and
// tells providers the public URL (set once the proxy's port is known).
let serverFlags = [];
const startServer = (dataDir, port, cafPort) =>
  start(dataDir, port, cafPort, { caf: mode === 'provider', extra: serverFlags });

/// A free loopback port (nginx's, known before the server starts).
function freePort() {
  return new Promise((resolve) => {
    const srv = require('net').createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// -- the scenario ---------------------------------------------------------------------

async function main() {
  requireBinaries();
  if (mode === 'provider' && !fs.existsSync(PROVIDER)) skip(`${PROVIDER} is not built yet`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-browser-'));
  const dataDir = path.join(tmp, 'data');
  const procs = [];
  let browser = null;
  let fake = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    for (const p of procs) await p.kill('SIGKILL');
    if (fake) await fake.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    let proxyPort = 0;
    if (mode === 'proxy') {
      const { execFileSync } = require('child_process');
      for (const tool of ['nginx', 'openssl']) {
        try { execFileSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]); } catch (e) {
          skip(`${tool} is missing (scripts/setup-deps installs it)`);
        }
      }
      proxyPort = await freePort();
      serverFlags = ['--trusted-proxy', '127.0.0.1', '--public-url', `https://127.0.0.1:${proxyPort}${BASE}`];
    }
    let server = await startServer(dataDir, 0, 0);
    procs.push(server);
    log(`server on port ${server.port}`);
    let origin = `http://127.0.0.1:${server.port}`;
    if (mode === 'proxy') {
      const nginx = new Proc('nginx', 'python3', [
        path.join(__dirname, '..', 'integration', 'nginx_proxy.py'), tmp, String(server.port), String(proxyPort)]);
      procs.push(nginx);
      await nginx.waitFor(/nginx listening on/);
      origin = `https://127.0.0.1:${proxyPort}`;
      log(`nginx on port ${proxyPort}`);
    }
    if (mode === 'provider') {
      const provider = new Proc('voicebot-provider', PROVIDER, [
        '--server-host', '127.0.0.1', '--server-port', String(server.cafPort), '--name', 'browser-test',
        '--state-file', path.join(tmp, 'provider.json'), '--bots', 'echo,greeter']);
      procs.push(provider);
    } else {
      fake = await fakeProvider();
      const r = await api(server.port, 'POST', '/api/bots/providers/register', {
        name: 'fake', base_url: `http://127.0.0.1:${fake.port}`,
        bots: [{ name: 'echo', description: 'repeats' }, { name: 'greeter', description: 'says hello' }],
      });
      check(r.status === 200, 'the fake HTTP provider registered');
    }
    await until('the bots to be offered', async () => {
      const r = await api(server.port, 'GET', '/api/bots');
      const names = r.body.bots.map((b) => b.name);
      return names.includes('echo') && names.includes('greeter');
    });

    browser = await launchBrowser();
    // The proxy's certificate is self-signed: accepted for this page only.
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 },
      ignoreHTTPSErrors: mode === 'proxy' });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.setDefaultTimeout(20000);
    await page.goto(`${origin}${BASE}/`);
    await page.locator('#health.ok').waitFor();

    // A lobby, live.
    await page.fill('#lobby-name', 'Browser test lobby');
    await page.click('#create-lobby button');
    await page.locator('#live', { hasText: 'live' }).waitFor();
    check(await page.locator('#lobby-title').textContent() === 'Browser test lobby', 'the new lobby is open');
    const lobbyId = decodeURIComponent(/lobby=([^&]+)/.exec(await page.evaluate(() => location.hash))[1]);
    await page.locator('#lobby-list li.current', { hasText: 'Browser test lobby' }).waitFor();

    // The echo bot, added once even when the button is clicked twice.
    await page.locator('#bot-select option[value="echo"]').waitFor({ state: 'attached' });
    await page.selectOption('#bot-select', 'echo');
    await page.fill('#bot-nick', 'Echo');
    await page.dblclick('#add-bot-button');
    await page.locator('#join-log li.joined', { hasText: 'Echo (echo) joined' }).waitFor();
    await page.locator('#members li.bot', { hasText: 'Echo' }).waitFor();
    const echoes = (await api(server.port, 'GET', `/api/lobby/${lobbyId}`)).body.sessions.filter((s) => s.bot_name === 'echo');
    check(echoes.length === 1, 'the echo bot is a member once');
    if (fake) check(fake.joins.filter((j) => j.bot === 'echo').length === 1, 'the provider got one join for echo');
    check(await page.locator('#join-log li').count() === 1, 'one attempt was shown');
    // Clicking again for a member: no request at all.
    await page.click('#add-bot-button');
    await page.locator('#join-log li', { hasText: 'already in this lobby' }).waitFor();

    // Chat: the line comes back through the lobby; the echo bot repeats it.
    await page.fill('#chat-nick', 'alice');
    await page.fill('#chat-text', 'hello from the browser');
    await page.press('#chat-text', 'Enter');
    await page.locator('#chat li.person', { hasText: 'alice: hello from the browser' }).waitFor();
    if (mode === 'provider') {
      await page.locator('#chat li.bot', { hasText: 'Echo: hello from the browser' }).waitFor();
      check(true, 'the echo bot answered the chat line');
    }

    // Restart the server while the page is open; add the greeter meanwhile.
    const port = server.port;
    const cafPort = server.cafPort || 0;
    await server.kill('SIGKILL');
    procs.splice(procs.indexOf(server), 1);
    log('server killed');
    await page.locator('#live', { hasText: 'reconnecting' }).waitFor();
    await page.selectOption('#bot-select', 'greeter');
    await page.fill('#bot-nick', 'Greeter');
    await page.click('#add-bot-button');
    // Without a proxy the join gets no answer; through nginx, its 503
    // "restarting" with Retry-After. The page retries both.
    await page.locator('#join-log li.retry',
      { hasText: mode === 'proxy' ? 'restarting' : 'no answer' }).waitFor();
    log('the page retries while the server is down');
    server = await startServer(dataDir, port, cafPort);
    procs.push(server);
    log(`server started again on port ${server.port}`);
    // The page's retries cover a server that is back within a few seconds.
    // Only the real provider may still be reconnecting after them; a person
    // would click again, and so does this test (a few times at most).
    const outcomes = page.locator('#join-log li.joined, #join-log li.failed');
    let text = '';
    for (let round = 1; ; round++) {
      await page.locator('#join-log li.joined, #join-log li.failed', { hasText: 'Greeter' }).last().waitFor();
      text = await outcomes.last().textContent();
      if (!/was not added/.test(text)) break;
      check(mode === 'provider' && round < 5, `the join gave up: ${text}`);
      log(`round ${round}: the page gave up before the provider was back (${text}); adding again`);
      const before = await outcomes.count();
      await page.click('#add-bot-button');
      await page.waitForFunction((n) => document.querySelectorAll('#join-log li.joined, #join-log li.failed').length > n, before);
    }
    check(/Greeter \(greeter\) joined/.test(text), `after the restart: ${text}`);
    const attempts = await page.locator('#join-log li').allTextContents();
    log('join log:\n  ' + attempts.join('\n  '));
    await page.locator('#live', { hasText: 'live' }).waitFor();
    await page.locator('#members li.bot', { hasText: 'Greeter' }).waitFor();
    await page.locator('#members li.bot', { hasText: 'Echo' }).waitFor();
    const sessions = (await api(server.port, 'GET', `/api/lobby/${lobbyId}`)).body.sessions;
    check(sessions.filter((s) => s.bot_name === 'greeter').length === 1, 'the greeter is a member once');
    check(sessions.filter((s) => s.bot_name === 'echo').length === 1, 'the echo bot is still a member, once');
    check(await page.locator('#members li.bot').count() === 2, 'the page shows both bots');
    if (mode === 'provider') {
      // The greeter greets the next member.
      await api(server.port, 'POST', `/api/lobby/${lobbyId}/sessions`, { nick: 'bob' });
      await page.locator('#chat li.bot', { hasText: 'Greeter' }).waitFor();
      check(true, 'the greeter greeted bob');
    }
    await page.locator('#provider-table tbody tr').first().waitFor();
    check(pageErrors.length === 0, `no script errors on the page ${pageErrors.join('; ')}`);

    if (mode === 'proxy') {
      check(await page.evaluate(() => location.protocol) === 'https:', 'the page came over HTTPS through nginx');
      await server.waitFor(/GET \/ai-voicebot\/api\/lobby 200 [0-9.]+ ms from 127\.0\.0\.1 via 127\.0\.0\.1 \(https\)/);
      check(true, 'the server logged the page\'s requests as forwarded over https');
    }
    await screenshot(page, { provider: 'web-lobby.png', proxy: 'web-lobby-proxy.png' }[mode]
      || 'web-lobby-http-provider.png');
  } finally {
    await cleanup();
  }
}

run(main);
