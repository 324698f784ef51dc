// The lobby page follows the fleet (SPEC §7) in a real browser: headless
// Debian Chromium driven by playwright-core, against the real
// voicebot-server under a base path, with fake providers of the original
// HTTP protocol in this process.
//
//   node web_fleet.test.js        (tests/browser/run fleet)
//
// Scenario: the server sweeps every 0.5 s and evicts providers unseen for
// 1 s; two HTTP providers offer the echo bot and send no heartbeats (the
// server probes them with GET /bots before evicting them; they answer).
// The page shows both providers online, joins the echo bot into a new
// lobby, and shows the member on the provider that took it. That provider
// dies (its HTTP server closes): the server evicts it and dispatches the
// member again, to the other provider; the page shows the member, same
// session and nick, on the new provider with a "moved to provider" marker,
// from a member_moved event on the WebSocket it already had (no reload, no
// reconnect). The live provider is drained: the page shows it draining,
// the member still on it. Then it dies as well: no provider is left for the
// member, the page shows it orphaned ("waiting for a provider"). A third
// provider of the bot registers: the member moves to it and is no longer
// orphaned. Screenshots go to $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  BASE, log, check, requireBinaries, startServer, api, until, fakeProvider, registerFake, launchBrowser, screenshot, run,
} = require('./harness');

/// Runs one step; a failure names the step, and adds what the server says
/// about its providers and the lobby, and the end of its log.
async function step(name, ctx, fn) {
  log(`step: ${name}`);
  try {
    return await fn();
  } catch (err) {
    let state = '';
    try {
      const providers = await api(ctx.server.port, 'GET', '/api/bots/providers');
      state += `\nproviders: ${JSON.stringify(providers.body)}`;
      if (ctx.lobbyId) {
        const lobby = await api(ctx.server.port, 'GET', `/api/lobby/${ctx.lobbyId}`);
        state += `\nlobby: ${JSON.stringify(lobby.body)}`;
      }
    } catch (e) {
      state += `\n(the server did not answer: ${e})`;
    }
    state += `\nlobby events the page got: ${ctx.frames.map((f) => f.type).join(', ')}`;
    if (ctx.page) {
      try {
        state += `\nthe page shows: members ${JSON.stringify(await ctx.page.locator('#members').innerText())}`;
        state += `; providers ${JSON.stringify(await ctx.page.locator('#provider-table tbody').innerText())}`;
        await screenshot(ctx.page, 'web-fleet-failed.png');
      } catch (e) {
        state += `\n(no screenshot: ${e})`;
      }
    }
    state += `\nserver log (last 25 lines):\n  ${ctx.server.lines.slice(-25).join('\n  ')}`;
    err.message = `stopped at step "${name}": ${err.message}${state}`;
    throw err;
  }
}

async function session(port, lobbyId, sessionId) {
  const r = await api(port, 'GET', `/api/lobby/${lobbyId}`);
  return r.body.sessions.find((s) => s.session_id === sessionId);
}

async function main() {
  requireBinaries();

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-browser-fleet-'));
  const fakes = [];
  let browser = null;
  const ctx = { server: null, page: null, lobbyId: null, frames: [] };
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGKILL');
    for (const f of fakes) await f.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    const server = await startServer(path.join(tmp, 'data'), 0, 0, {
      extra: ['--cleanup-interval', '0.5', '--stale-after', '1'],
    });
    ctx.server = server;
    log(`server on port ${server.port}`);
    const a = await registerFake(server.port, 'fleet-a', await fakeProvider({ bots: ['echo'], runPrefix: 'a-run-' }));
    const b = await registerFake(server.port, 'fleet-b', await fakeProvider({ bots: ['echo'], runPrefix: 'b-run-' }));
    fakes.push(a, b);
    check(a.provider_id !== b.provider_id, 'two providers, two ids');
    await until('echo offered by both providers', async () => {
      const r = await api(server.port, 'GET', '/api/bots');
      return r.body.bots.filter((x) => x.name === 'echo').length === 2;
    });

    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    ctx.page = page;
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Every lobby event the page receives, and how many sockets it opened.
    let sockets = 0;
    page.on('websocket', (ws) => {
      if (!ws.url().includes('/ws/lobby/')) return;
      sockets += 1;
      ws.on('framereceived', (f) => {
        try { ctx.frames.push(JSON.parse(f.payload)); } catch (_) { /* not JSON */ }
      });
    });
    page.setDefaultTimeout(20000);
    await page.goto(`http://127.0.0.1:${server.port}${BASE}/`);
    await page.locator('#health.ok').waitFor();

    await step('the providers panel shows both providers online', ctx, async () => {
      for (const f of [a, b]) {
        const row = page.locator(`#provider-table tr[data-provider-id="${f.provider_id}"]`);
        await row.locator('.state.status-online', { hasText: 'online' }).waitFor();
        check((await row.locator('td.name').textContent()).startsWith(`${f.name} `), `${f.name} is listed online, by name`);
      }
      await page.locator('#bot-list li', { hasText: 'echo — repeats (2 providers)' }).waitFor();
    });

    let member = null;
    let first = null;
    let second = null;
    const li = () => page.locator(`#members li.bot[data-session-id="${member.session_id}"]`);
    await step('the page joins the echo bot into a new lobby', ctx, async () => {
      await page.fill('#lobby-name', 'Fleet lobby');
      await page.click('#create-lobby button');
      await page.locator('#live', { hasText: 'live' }).waitFor();
      ctx.lobbyId = decodeURIComponent(/lobby=([^&]+)/.exec(await page.evaluate(() => location.hash))[1]);
      await page.locator('#bot-select option[value="echo"]').waitFor({ state: 'attached' });
      await page.selectOption('#bot-select', 'echo');
      await page.fill('#bot-nick', 'Echo');
      await page.click('#add-bot-button');
      await page.locator('#join-log li.joined', { hasText: 'Echo (echo) joined' }).waitFor();
      const sessions = (await api(server.port, 'GET', `/api/lobby/${ctx.lobbyId}`)).body.sessions;
      check(sessions.length === 1 && sessions[0].is_bot, 'one bot member');
      member = sessions[0];
      first = [a, b].find((f) => f.provider_id === member.provider_id);
      second = first === a ? b : a;
      check(!!first, `the member runs on ${first && first.name} (${member.run_id})`);
      check(first.joins.length === 1 && second.joins.length === 0, 'one join, on that provider only');
      await li().and(page.locator(`[data-provider-id="${first.provider_id}"]`)).waitFor();
      await li().locator('.where', { hasText: `on ${first.name}` }).waitFor();
      check(true, `the page shows the member on ${first.name}`);
      await page.evaluate(() => { window.fleetTestMark = 'still the same page'; });
    });

    await step('the provider that runs the member dies', ctx, async () => {
      await first.stop();
      log(`${first.name} stopped: connections to it are refused`);
    });

    await step(`the server evicts the dead provider (its probe fails, the live one's answers)`, ctx, async () => {
      await until(`${first.name} to be evicted`, async () => {
        const r = await api(server.port, 'GET', '/api/bots/providers');
        return !r.body.providers.some((p) => p.provider_id === first.provider_id);
      }, 20000);
      const r = await api(server.port, 'GET', '/api/bots/providers');
      check(r.body.providers.some((p) => p.provider_id === second.provider_id), `${second.name} is kept`);
      check(second.probes.length > 0, `${second.name} was probed (${second.probes.length} times) and answered`);
    });

    await step(`the server dispatches the member again, to ${second && second.name}`, ctx, async () => {
      await until(`a join of session ${member.session_id} on ${second.name}`,
        async () => second.joins.some((j) => j.session_id === member.session_id), 20000);
      const j = second.joins.find((x) => x.session_id === member.session_id);
      check(j.bot === 'echo' && j.lobby_id === ctx.lobbyId && j.nick === member.nick,
        `${second.name} got the join: bot ${j.bot}, same lobby, session and nick, run ${j.run_id}`);
      const s = await until('the lobby to name the new provider', async () => {
        const x = await session(server.port, ctx.lobbyId, member.session_id);
        return x && x.provider_id === second.provider_id ? x : null;
      }, 10000);
      check(s.run_id === j.run_id && s.nick === member.nick && !s.orphaned,
        `GET /api/lobby: same session and nick, provider ${second.name}, run ${s.run_id}, not orphaned`);
      check(typeof s.moved_at === 'number' && s.moved_at > 0, `moved_at is set (${s.moved_at})`);
      member.run_id = s.run_id;
    });

    await step('the page shows the member on the new provider, without a reload', ctx, async () => {
      await li().and(page.locator(`[data-provider-id="${second.provider_id}"]`)).waitFor();
      await li().locator('.badge.moved', { hasText: `moved to provider ${second.name}` }).waitFor();
      await li().locator('.where', { hasText: `on ${second.name}` }).waitFor();
      const moved = ctx.frames.filter((f) => f.type === 'member_moved');
      check(moved.length === 1 && moved[0].member.session_id === member.session_id &&
        moved[0].member.provider_id === second.provider_id && moved[0].member.nick === member.nick,
        'the page got one member_moved event with the new provider');
      check(await page.evaluate(() => window.fleetTestMark) === 'still the same page', 'the page was not reloaded');
      check(sockets === 1 && ctx.frames.filter((f) => f.type === 'members').length === 1,
        'over the WebSocket it had from the start (no reconnect)');
      check(await page.locator('#members li').count() === 1, 'the member was replaced in place, not added');
      await page.locator(`#provider-table tr[data-provider-id="${first.provider_id}"]`).waitFor({ state: 'detached' });
      check(true, `the providers panel no longer lists ${first.name}`);
      const p = (await api(server.port, 'GET', `/api/bots/providers/${second.provider_id}`)).body;
      if (typeof p.active_runs === 'number') {
        await page.locator(`#provider-table tr[data-provider-id="${second.provider_id}"] td.runs`,
          { hasText: String(p.active_runs) }).waitFor();
        check(p.active_runs === 1, `${second.name} runs ${p.active_runs} bot member, and the page says so`);
      }
    });
    await screenshot(page, 'web-fleet-moved.png');

    await step(`a drained provider shows as draining`, ctx, async () => {
      const r = await api(server.port, 'POST', `/api/bots/providers/${second.provider_id}/drain`, {});
      check(r.status === 200 && r.body && r.body.status === 'draining', `POST …/drain {} answered ${r.status} ${r.body && r.body.status}`);
      const row = page.locator(`#provider-table tr[data-provider-id="${second.provider_id}"]`);
      await row.locator('.state.status-draining', { hasText: 'draining' }).waitFor();
      check(await row.getAttribute('data-status') === 'draining', `the page shows ${second.name} draining`);
      const s = await session(server.port, ctx.lobbyId, member.session_id);
      check(s && s.provider_id === second.provider_id, 'the member stays on the draining provider');
      await li().locator('.where .status-draining', { hasText: 'draining' }).waitFor();
    });

    await step('the draining provider dies too: the member is orphaned', ctx, async () => {
      await second.stop();
      const s = await until('the member to be orphaned', async () => {
        const x = await session(server.port, ctx.lobbyId, member.session_id);
        return x && x.orphaned ? x : null;
      }, 20000);
      check(s.nick === member.nick, 'GET /api/lobby: the member stays, orphaned');
      await li().locator('.badge.orphaned', { hasText: 'waiting for a provider' }).waitFor();
      check(ctx.frames.some((f) => f.type === 'member_orphaned' && f.member.session_id === member.session_id),
        'the page got member_orphaned and shows "waiting for a provider"');
    });
    await screenshot(page, 'web-fleet-orphaned.png');

    await step('a new provider of the bot registers: the orphan moves to it', ctx, async () => {
      const c = await registerFake(server.port, 'fleet-c', await fakeProvider({ bots: ['echo'], runPrefix: 'c-run-' }));
      fakes.push(c);
      await until(`a join of session ${member.session_id} on fleet-c`,
        async () => c.joins.some((j) => j.session_id === member.session_id), 20000);
      await li().and(page.locator(`[data-provider-id="${c.provider_id}"]`)).waitFor();
      await li().locator('.badge.moved', { hasText: 'moved to provider fleet-c' }).waitFor();
      check(await li().locator('.badge.orphaned').count() === 0, 'the page shows it on fleet-c, no longer orphaned');
      const last = ctx.frames.filter((f) => f.type === 'member_moved').pop();
      check(last.member.provider_id === c.provider_id && last.member.orphaned === false,
        'member_moved with orphaned false');
      check(await page.evaluate(() => window.fleetTestMark) === 'still the same page' && sockets === 1,
        'still the same page and socket');
    });

    check(pageErrors.length === 0, `no script errors on the page ${pageErrors.join('; ')}`);
    await screenshot(page, 'web-fleet.png');
  } finally {
    await cleanup();
  }
}

run(main);
