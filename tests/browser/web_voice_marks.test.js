// What the lobby page marks about voice (SPEC §9, §7), read from the page as
// a person sees it: who is a voice peer, who is speaking, and a bot member
// that moved to another provider losing and getting back its voice. Headless
// Debian Chromium driven by playwright-core, the real voicebot-server under a
// base path, fake HTTP providers in this process; everything on loopback.
//
//   node web_voice_marks.test.js        (tests/browser/run voice-marks)
//
// Scenario: Chromium's fake microphone plays a WAV made with espeak-ng.
// alice and bob join a lobby with voice; carol is a person member with no
// voice socket (a session posted, no hello). Each page marks the other as a
// voice peer and as speaking (what it receives, cross-checked with
// getStats()), marks itself speaking (its microphone), and marks carol not
// at all. bob mutes: his own page and alice's show him not speaking, for
// 2 s sampled in the page, while alice still gets his (silent) packets;
// unmuted, he is speaking again. bob leaves.
//
// Then a bot: two fake HTTP providers of the echo bot; the echo bot joins
// the lobby. It is a member but not a voice peer until its run says hello:
// alice does not mark it. A third page of the browser plays the bot's run:
// it opens the lobby WebSocket itself, says hello with the session_id and
// the session_token the provider got in its join body, and calls alice with
// a fake-media RTCPeerConnection (the script is this test's, not web/'s).
// alice marks it a voice peer, speaking. Its provider dies: the server evicts
// it and dispatches the member again to the other provider, with a new
// token; the old run's socket gets bad_token. alice shows "moved to provider
// … — reconnecting voice" and no voice mark; a new bot page says hello with
// the new token and calls: alice shows "— voice back" once that new
// connection's audio arrives, and the bot speaking. Screenshots go to
// $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  BASE, log, check, requireBinaries, startServer, api, until, fakeProvider, registerFake, screenshot, run,
  sleep, makeSpeech, statsOf, joinVoice, connected, hears, voiceRoom, stepOf,
} = require('./harness');

const QUIET_MS = 2000; // a muted peer must show no speaking for this long

// -- what the page shows of one member -------------------------------------------------------

const member = (p, id) => p.page.locator(`#members li[data-session-id="${id}"]`);
const speakingMark = (p, id) => member(p, id).locator('.speaking-mark');

/// How many of the samples (every 100 ms for `ms`, in the page) show the
/// speaking mark at `selector`.
function speakingSamples(p, selector, ms) {
  return p.page.evaluate(({ selector, ms }) => new Promise((done) => {
    const seen = [];
    const timer = setInterval(() => {
      const mark = document.querySelector(selector);
      seen.push(!!mark && mark.checkVisibility());
      if (seen.length * 100 >= ms) { clearInterval(timer); done(seen); }
    }, 100);
  }), { selector, ms });
}

/// The voice badge's accessible text (visible text and its label) and title.
async function voiceBadge(p, id) {
  const badge = member(p, id).locator('.badge.voice');
  return { text: await badge.textContent(), title: await badge.getAttribute('title') };
}

// -- a bot's run, played by a page of the test (not web/'s code) -----------------------------

/// Runs in a page of the server's origin: the lobby WebSocket, a hello for
/// the bot's session with its token, then an offer to each person of the
/// welcome (bots call people), with the fake microphone's track. Answers
/// offers too. window.botVoice tells the test what happened.
function botRun({ wsUrl, sessionId, token }) {
  const bot = { welcomed: false, errors: [], peers: [] };
  window.botVoice = bot;
  const conns = new Map();
  let chain = Promise.resolve();
  return navigator.mediaDevices.getUserMedia({ audio: true }).then((mic) => {
    const ws = new WebSocket(wsUrl);
    const send = (m) => ws.send(JSON.stringify(m));
    const signal = (to, data) => send({ type: 'signal', to, data });
    const open = (peer, iceServers) => {
      const pc = new RTCPeerConnection({ iceServers });
      pc.addTrack(mic.getAudioTracks()[0], mic);
      pc.onicecandidate = ({ candidate }) => { if (candidate) signal(peer, { candidate: candidate.toJSON() }); };
      conns.set(peer, pc);
      return pc;
    };
    let iceServers = [];
    const onMessage = async (msg) => {
      if (msg.type === 'welcome') {
        bot.welcomed = true;
        iceServers = msg.ice_servers || [];
        for (const p of msg.peers.filter((x) => !x.is_bot)) {
          bot.peers.push(p.session_id);
          const pc = open(p.session_id, iceServers);
          await pc.setLocalDescription();
          signal(p.session_id, { description: pc.localDescription.toJSON() });
        }
      } else if (msg.type === 'signal' && msg.data.description) {
        const d = msg.data.description;
        let pc = conns.get(msg.from);
        if (d.type === 'offer') {
          if (!pc) pc = open(msg.from, iceServers);
          await pc.setRemoteDescription(d);
          await pc.setLocalDescription();
          signal(msg.from, { description: pc.localDescription.toJSON() });
        } else if (pc && pc.signalingState === 'have-local-offer') {
          await pc.setRemoteDescription(d);
        }
      } else if (msg.type === 'signal' && msg.data.candidate) {
        const pc = conns.get(msg.from);
        if (pc) await pc.addIceCandidate(msg.data.candidate).catch(() => {});
      } else if (msg.type === 'peer_left' && conns.has(msg.session_id)) {
        conns.get(msg.session_id).close();
        conns.delete(msg.session_id);
      } else if (msg.type === 'error') {
        bot.errors.push(msg.code);
      }
    };
    // One message at a time: a candidate waits for the description before it.
    ws.onmessage = (m) => { const msg = JSON.parse(m.data); chain = chain.then(() => onMessage(msg)).catch((e) => bot.errors.push(String(e))); };
    ws.onopen = () => send({ type: 'hello', session_id: sessionId, token, resume: false });
    bot.states = () => [...conns.values()].map((pc) => pc.connectionState);
  });
}

/// A page of the server's origin (its health route: no lobby page script)
/// running botRun with this run's token.
async function startBotRun(browser, origin, lobbyId, join, name) {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin}${BASE}/api/health`);
  const wsUrl = `${origin.replace(/^http/, 'ws')}${BASE}/ws/lobby/${encodeURIComponent(lobbyId)}`;
  await page.evaluate(botRun, { wsUrl, sessionId: join.session_id, token: join.session_token });
  await until(`${name} to be welcomed`, () => page.evaluate(() => window.botVoice.welcomed || window.botVoice.errors.length > 0));
  const bot = await page.evaluate(() => ({ welcomed: window.botVoice.welcomed, errors: window.botVoice.errors }));
  check(bot.welcomed && bot.errors.length === 0, `${name} said hello with ${join.run_id}'s token and was welcomed`);
  return { name, page, errors };
}

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-voice-marks-'));
  const ctx = { server: null, pages: [], shots: 'web-voice-marks' };
  const fakes = [];
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGKILL');
    for (const f of fakes) await f.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    // Providers unseen for 1 s are probed, and evicted when the probe fails.
    ctx.server = await startServer(path.join(tmp, 'data'), 0, 0, { extra: ['--cleanup-interval', '0.5', '--stale-after', '1'] });
    const port = ctx.server.port;
    const origin = `http://127.0.0.1:${port}`;
    log(`server on port ${port}`);
    const room = await voiceRoom(port, 'Voice marks lobby', wav);
    ({ browser } = room);
    const { lobbyId, alice, bob } = room;
    ctx.pages.push(alice, bob);

    const [aliceId, bobId, carolId] = await step('alice and bob join with voice; carol is a member without voice', async () => {
      const a = await joinVoice(alice, 'alice');
      const b = await joinVoice(bob, 'bob');
      const c = await api(port, 'POST', `/api/lobby/${lobbyId}/sessions`, { nick: 'carol' });
      check(c.status === 201 && c.body.session_token, 'carol is a person member (a session, never a hello)');
      return [a, b, c.body.session_id];
    });

    await step('each marks the other a voice peer, and not carol', async () => {
      await connected(alice, bobId);
      await connected(bob, aliceId);
      for (const [p, id, other] of [[alice, bobId, 'bob'], [bob, aliceId, 'alice']]) {
        await member(p, id).locator('.badge.voice').waitFor();
        const badge = await voiceBadge(p, id);
        check(badge.title === 'in the voice room (connected)' && badge.text === 'voice: in the voice room (connected)',
          `${p.name} marks ${other} a voice peer: "${badge.text}", title "${badge.title}"`);
        await member(p, carolId).waitFor();
        check(await member(p, carolId).locator('.badge.voice, .level, .speaking-mark').count() === 0,
          `${p.name} lists carol with no voice mark`);
      }
      check((await voiceBadge(alice, aliceId)).title === 'you, in the voice room', 'alice marks herself');
    });

    await step('each shows the other speaking, and itself', async () => {
      for (const [p, id, other] of [[alice, bobId, 'bob'], [bob, aliceId, 'alice']]) {
        await hears(p, id, other);
        await speakingMark(p, id).waitFor({ state: 'visible', timeout: 15000 });
        check(await speakingMark(p, id).textContent() === 'speaking', `${p.name} shows ${other} speaking`);
        await p.page.locator('#voice-controls .speaking-mark').waitFor({ state: 'visible', timeout: 15000 });
        await speakingMark(p, p === alice ? aliceId : bobId).waitFor({ state: 'visible', timeout: 15000 });
        check(true, `${p.name} shows itself speaking (its microphone), above and in the members list`);
      }
      const levels = [];
      for (let i = 0; i < 10; i++) {
        levels.push((await statsOf(alice)).find((r) => r.session_id === bobId).level.toFixed(3));
        await sleep(200);
      }
      log(`alice's level of bob (the page's getStats meter, every 200 ms): ${levels.join(' ')}`);
    });

    await step('bob mutes: no speaking on either page, the call goes on', async () => {
      await bob.page.click('#voice-mute');
      check(await bob.page.textContent('#voice-mute') === 'Unmute', 'bob\'s page offers Unmute');
      await speakingMark(alice, bobId).waitFor({ state: 'hidden', timeout: 5000 });
      const before = (await statsOf(alice)).find((r) => r.session_id === bobId);
      const [onAlice, onBob, ownRow] = await Promise.all([
        speakingSamples(alice, `#members li[data-session-id="${bobId}"] .speaking-mark`, QUIET_MS),
        speakingSamples(bob, '#voice-controls .speaking-mark', QUIET_MS),
        speakingSamples(bob, `#members li[data-session-id="${bobId}"] .speaking-mark`, QUIET_MS),
      ]);
      const after = (await statsOf(alice)).find((r) => r.session_id === bobId);
      check(onAlice.length >= QUIET_MS / 100 * 0.9 && !onAlice.some(Boolean),
        `alice shows bob not speaking in all ${onAlice.length} samples over ${QUIET_MS} ms`);
      check(!onBob.some(Boolean) && !ownRow.some(Boolean), `bob's page shows himself not speaking (${onBob.length} samples)`);
      check(after.connection_id === before.connection_id && after.packetsReceived > before.packetsReceived + 50,
        `alice still gets bob's packets (${before.packetsReceived} then ${after.packetsReceived}), silent: level ${after.level.toFixed(3)}`);
      await bob.page.click('#voice-mute');
      await speakingMark(alice, bobId).waitFor({ state: 'visible', timeout: 15000 });
      check(true, 'unmuted, alice shows bob speaking again');
    });

    await step('bob leaves: alice no longer lists him', async () => {
      await bob.page.click('#voice-leave');
      await member(alice, bobId).waitFor({ state: 'detached' });
      await until('alice\'s status to count nobody', async () =>
        (await alice.page.textContent('#voice-state')) === 'in the voice room (nobody else yet)');
      check(true, 'bob is gone from alice\'s members (peer_left, member_left)');
      ctx.pages.splice(ctx.pages.indexOf(bob), 1);
      await bob.page.close();
    });

    const a = await registerFake(port, 'marks-a', await fakeProvider({ bots: ['echo'], runPrefix: 'a-run-' }));
    const b = await registerFake(port, 'marks-b', await fakeProvider({ bots: ['echo'], runPrefix: 'b-run-' }));
    fakes.push(a, b);

    const { botId, first, second } = await step('the echo bot joins: a member, not a voice peer yet', async () => {
      const r = await api(port, 'POST', '/api/bots/echo/join', { lobby_id: lobbyId, nick: 'Echo' });
      check(r.status === 200, `the echo bot joined (${r.status})`);
      const f = [a, b].find((x) => x.provider_id === r.body.provider_id);
      const join = f.joins.find((j) => j.session_id === r.body.session_id);
      check(!!join && typeof join.session_token === 'string' && join.session_token.length >= 22,
        `${f.name} got the join with a session_token (run ${join && join.run_id})`);
      await member(alice, r.body.session_id).waitFor();
      check(await member(alice, r.body.session_id).locator('.badge.voice, .speaking-mark').count() === 0,
        'alice lists the bot with no voice mark: its run has not said hello');
      return { botId: r.body.session_id, first: f, second: f === a ? b : a };
    });

    const botLi = member(alice, botId);
    const run1 = await step('the bot\'s run says hello and calls alice', async () => {
      const r = await startBotRun(browser, origin, lobbyId, first.joins[0], 'the bot\'s first run');
      await botLi.locator('.badge.voice').waitFor();
      await connected(alice, botId);
      await hears(alice, botId, 'the bot');
      await speakingMark(alice, botId).waitFor({ state: 'visible', timeout: 15000 });
      check(await botLi.locator('.badge.moved').count() === 0, 'alice marks the bot a voice peer, speaking, not moved');
      return r;
    });
    const oldConn = (await statsOf(alice)).find((r) => r.session_id === botId).connection_id;

    await step(`its provider dies: the bot moves to ${second.name}, alice shows it reconnecting voice`, async () => {
      await first.stop();
      log(`${first.name} stopped: connections to it are refused`);
      await until(`a join of the bot on ${second.name}`, async () => second.joins.some((j) => j.session_id === botId), 20000);
      // By name once the providers panel has the new provider (refreshed soon after a move).
      const moved = botLi.locator('.badge.moved', { hasText: `moved to provider ${second.name}` });
      await moved.waitFor();
      const text = await moved.textContent();
      check(text === `moved to provider ${second.name} — reconnecting voice`, `alice shows "${text}"`);
      await botLi.locator('.badge.voice').waitFor({ state: 'detached' });
      check(await speakingMark(alice, botId).count() === 0, 'and no voice mark, no speaking: the old run\'s voice is gone');
      await until('the old run\'s socket to be fenced', () => run1.page.evaluate(() => window.botVoice.errors.includes('bad_token')));
      check(true, 'the old run\'s socket got bad_token');
      await run1.page.close(); // its media is gone with its provider
    });
    await screenshot(alice.page, 'web-voice-marks-moved.png');

    await step('the new run says hello with its token and calls: alice shows voice back', async () => {
      const join = second.joins.find((j) => j.session_id === botId);
      check(join.session_token !== first.joins[0].session_token, `the new run (${join.run_id}) has a new token`);
      const run2 = await startBotRun(browser, origin, lobbyId, join, 'the bot\'s new run');
      check((await botLi.locator('.badge.moved').textContent()).startsWith(`moved to provider ${second.name} — `),
        'the move is still marked');
      const conn = await connected(alice, botId);
      check(conn.connection_id !== oldConn, `alice has a new connection to the bot (${oldConn} then ${conn.connection_id})`);
      await botLi.locator('.badge.moved', { hasText: 'voice back' }).waitFor({ timeout: 20000 });
      const row = (await statsOf(alice)).find((r) => r.session_id === botId);
      const text = await botLi.locator('.badge.moved').textContent();
      check(text === `moved to provider ${second.name} — voice back` && row.packetsReceived > 0,
        `alice shows "${text}" (${row.packetsReceived} packets on the new connection)`);
      await botLi.locator('.badge.voice').waitFor();
      await hears(alice, botId, 'the bot\'s new run');
      await speakingMark(alice, botId).waitFor({ state: 'visible', timeout: 15000 });
      check(true, 'alice marks the bot a voice peer again, speaking');
      check(run2.errors.length === 0, 'no script errors in the bot pages');
    });

    check(alice.errors.length === 0, `no script errors on alice's page ${alice.errors.join('; ')}`);
    await screenshot(alice.page, 'web-voice-marks.png');
  } finally {
    await cleanup();
  }
}

run(main, 170000);
