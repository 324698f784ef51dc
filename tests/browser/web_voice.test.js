// The voice room of the lobby page (SPEC §9) in a real browser: two pages of
// one headless Debian Chromium, driven by playwright-core, against the real
// voicebot-server under a base path, everything on loopback.
//
//   node web_voice.test.js        (tests/browser/run voice)
//
// Scenario: Chromium's fake microphone plays a WAV made with espeak-ng (a
// tone when espeak-ng is missing). Both pages open one lobby and join
// it with voice; each hears the other, judged by getStats() (inbound-rtp
// audio: packets rise, energy above 0), and the members list marks the
// other as a voice peer and as speaking. The server is killed (-9): the
// audio goes on, sampled every 100 ms in the pages (no gap of 500 ms), and
// after the server is back on the same port and data dir both pages say
// hello again with resume and keep the very same RTCPeerConnections (the
// ids the page gives each one), with no renegotiation. Then one page is
// reloaded: it rejoins the same session (no new POST, hello without
// resume), both make a new connection and hear each other again. A
// screenshot is saved under $VB_BUILD_DIR/artifacts/.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  log, check, requireBinaries, startServer, api, until, screenshot, run,
  sleep, makeSpeech, peersOf, welcomed, sentSince, joinVoice, connected, hears,
  sampleDuring, checkAudioGap, keepConnections, voiceRoom, stepOf,
} = require('./harness');

const DOWNTIME_MS = 4000;  // the server stays down this long
const MAX_GAP_MS = 500;    // the largest gap between rising packet counts allowed meanwhile

// -- the scenario --------------------------------------------------------------------------------

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-voice-'));
  const dataDir = path.join(tmp, 'data');
  const ctx = { server: null, pages: [] };
  let browser = null;
  const cleanup = async () => {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    ctx.server = await startServer(dataDir, 0, 0);
    const port = ctx.server.port;
    log(`server on port ${port}`);
    const room = await voiceRoom(port, 'Voice test lobby', wav);
    ({ browser } = room);
    const { lobbyId, alice, bob } = room;
    ctx.pages.push(alice, bob);

    const [aliceId, bobId] = await step('both join with voice', async () => {
      const a = await joinVoice(alice, 'alice');
      const b = await joinVoice(bob, 'bob');
      check(a && b && a !== b, 'two sessions');
      const lobby = await api(port, 'GET', `/api/lobby/${lobbyId}`);
      check(lobby.body.sessions.filter((s) => !s.is_bot && (s.session_id === a || s.session_id === b)).length === 2,
        'both are people members of the lobby');
      return [a, b];
    });

    await step('each hears the other', async () => {
      await connected(alice, bobId);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
      const polite = (await peersOf(alice)).find((c) => c.session_id === bobId).polite;
      check(polite === aliceId < bobId, 'the smaller session_id is the polite side');
      await alice.page.locator(`#members li.voice[data-session-id="${bobId}"] .level`).waitFor();
      await alice.page.locator(`#members li.voice.me[data-session-id="${aliceId}"]`).waitFor();
      // alice joined first: her status line counts bob once he came (peer_joined).
      await until('alice\'s status counts bob', async () =>
        (await alice.page.textContent('#voice-state')) === 'in the voice room with 1 other');
      await alice.page.locator(`#members li.speaking[data-session-id="${bobId}"]`).waitFor({ timeout: 15000 });
      check(true, 'alice\'s members list marks bob as a voice peer, and as speaking');
    });

    const { before, same: sameConnections } = await keepConnections([alice, bob]);

    await step('the server is killed: the call goes on', async () => {
      const [sa, sb] = await sampleDuring([alice, bob], async () => {
        await ctx.server.kill('SIGKILL');
        log('server killed');
        await sleep(DOWNTIME_MS);
      });
      for (const [p, samples, from] of [[alice, sa, bobId], [bob, sb, aliceId]]) {
        checkAudioGap(p, samples, from, MAX_GAP_MS, DOWNTIME_MS / 100 * 0.5);
        check(!(await welcomed(p)), `${p.name} noticed its socket dropped`);
      }
      await sameConnections();
    });

    const restartedAt = Date.now();
    await step('the server is back: same connections, no renegotiation', async () => {
      ctx.server = await startServer(dataDir, port, 0);
      log(`server started again on port ${ctx.server.port}`);
      await until('both pages in the voice room again', async () => (await welcomed(alice)) && (await welcomed(bob)), 30000);
      for (const p of [alice, bob]) {
        const hellos = sentSince(p, restartedAt, 'hello');
        check(hellos.length >= 1 && hellos.every((f) => f.msg.resume === true), `${p.name} said hello with resume: true`);
      }
      // The audio went on through the resume.
      const [sa, sb] = await sampleDuring([alice, bob], () => sleep(2000));
      checkAudioGap(alice, sa, bobId, MAX_GAP_MS);
      checkAudioGap(bob, sb, aliceId, MAX_GAP_MS);
      await sameConnections();
      for (const p of [alice, bob]) {
        check(sentSince(p, restartedAt, 'signal').length === 0, `${p.name} sent no signal after the resume`);
      }
    });

    await step('bob reloads: the same session, called anew', async () => {
      const posts = [];
      bob.page.on('request', (r) => { if (r.method() === 'POST' && /\/sessions$/.test(r.url())) posts.push(r.url()); });
      const oldConn = before.alice.find((c) => c.session_id === bobId).connection_id;
      const reloadedAt = Date.now();
      await bob.page.reload();
      await until('bob in the voice room after the reload', () => welcomed(bob));
      check(await bob.page.evaluate(() => window.voice.sessionId()) === bobId, 'bob rejoined the same session_id');
      check(posts.length === 0, 'no new session was posted');
      const hello = sentSince(bob, reloadedAt, 'hello');
      check(hello.length === 1 && hello[0].msg.resume === false && hello[0].msg.session_id === bobId, 'bob said hello without resume');
      const conn = await connected(alice, bobId);
      check(conn.connection_id !== oldConn, `alice made a new connection to bob (${oldConn} then ${conn.connection_id})`);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
    });

    for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
    await screenshot(alice.page, 'web-voice.png');
  } finally {
    await cleanup();
  }
}

run(main, 150000);
