// The time from a page's join to its first audio packet from the other
// page (SPEC §9, docs/voice.md): the real voicebot-server on loopback, two
// pages of one headless Chromium with fake media, exactly as the browser
// tests run them (tests/browser/harness.js).
//
//   node bench/voice/first_audio.js [--runs 5]
//
// Each run: a fresh lobby, two pages open on it; page 1 joins the voice
// room; then page 2 joins. From the click on page 2's join button (a
// capture listener takes the time in the page) to the first sample of
// window.voice.stats() in which page 2's inbound-rtp audio from page 1 has
// packetsReceived > 0, and the same for page 1 hearing page 2. Each page
// samples stats() itself, every POLL_MS after the last sample ended (no
// round trip to node); a sample's time is when stats() answered, so a
// figure is late by at most one interval plus one getStats(). Beside it,
// page 2's welcome (window.voice.welcomed()) and its connection's
// "connected" (sampled the same way; it may come a little after the first
// packet). The times of both pages are performance.timeOrigin +
// performance.now(), one clock for the pages of one machine.
//
// VB_BUILD_DIR (default build/) holds voicebot-server; /usr/bin/chromium.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  NO_QUOTAS, log, requireBinaries, startServer, api, until, launchBrowser, run,
  makeSpeech, voiceFlags, openPage, joinVoice, median,
} = require('../../tests/browser/harness');

const POLL_MS = 20;
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

/// In the page: samples window.voice.stats() until a connection to `peerId`
/// (any peer when null) has received audio; window.firstAudio holds the times.
function startWatch(p, peerId) {
  return p.page.evaluate(({ peerId, pollMs }) => {
    const now = () => performance.timeOrigin + performance.now();
    const w = { clicked: null, welcomed: null, connected: null, firstPacket: null, samples: 0 };
    window.firstAudio = w;
    const button = document.querySelector('#voice-join-button');
    button.addEventListener('click', () => { if (w.clicked === null) w.clicked = now(); }, { capture: true });
    const mine = (r) => peerId === null || r.session_id === peerId;
    const tick = async () => {
      const began = now();
      const rows = await window.voice.stats();
      const t = now();
      w.samples++;
      if (w.welcomed === null && window.voice.welcomed()) w.welcomed = t;
      if (w.connected === null && window.voice.peers().some((c) => mine(c) && c.connectionState === 'connected')) w.connected = t;
      if (w.firstPacket === null && rows.some((r) => mine(r) && r.packetsReceived > 0)) w.firstPacket = t;
      // The state may say "connected" a little after the first packet came.
      if (w.firstPacket !== null && w.connected !== null) return;
      setTimeout(tick, Math.max(0, pollMs - (now() - began)));
    };
    tick();
  }, { peerId, pollMs: POLL_MS });
}

const watched = (p) => p.page.evaluate(() => window.firstAudio);

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-first-audio-'));
  let server = null;
  let browser = null;
  try {
    const wav = makeSpeech(tmp);
    server = await startServer(path.join(tmp, 'data'), 0, 0, { extra: NO_QUOTAS });
    const port = server.port;
    const origin = `http://127.0.0.1:${port}`;
    log(`server on port ${port}; ${RUNS} runs, stats() every ${POLL_MS} ms`);
    browser = await launchBrowser({ args: voiceFlags(wav) });

    const results = [];
    for (let i = 1; i <= RUNS; i++) {
      const created = await api(port, 'POST', '/api/lobby', { name: `first audio ${i}` });
      if (created.status !== 201) throw new Error(`the lobby was not created (${created.status})`);
      const lobbyId = created.body.id;
      const one = await openPage(browser, origin, lobbyId, 'page1');
      const two = await openPage(browser, origin, lobbyId, 'page2');
      const oneId = await joinVoice(one, 'one');
      await two.page.fill('#voice-nick', 'two');
      await startWatch(one, null); // page 1 has no connection yet: its first one is to page 2
      await startWatch(two, oneId);
      await two.page.click('#voice-join-button');
      const [w1, w2] = await until('both pages to hear each other', async () => {
        const ws = [await watched(one), await watched(two)];
        return ws.every((w) => w.firstPacket !== null && w.connected !== null) ? ws : null;
      }, 30000);
      const from = w2.clicked;
      const r = {
        twoHearsOne: w2.firstPacket - from, oneHearsTwo: w1.firstPacket - from,
        welcome: w2.welcomed - from, connected: w2.connected - from, samples: Math.min(w1.samples, w2.samples),
      };
      results.push(r);
      console.log(`run ${i}: page 2 hears page 1 ${r.twoHearsOne.toFixed(0)} ms, page 1 hears page 2 ${r.oneHearsTwo.toFixed(0)} ms `
        + `after page 2's click (page 2 welcomed at ${r.welcome.toFixed(0)} ms, connected at ${r.connected.toFixed(0)} ms; `
        + `${r.samples}+ samples a page)`);
      await Promise.all([one.page.close(), two.page.close()]);
      for (const p of [one, two]) if (p.errors.length) throw new Error(`script errors on ${p.name}: ${p.errors.join('; ')}`);
    }
    const m = (k) => median(results.map((r) => r[k])).toFixed(0);
    console.log(`median of ${RUNS}: page 2 hears page 1 ${m('twoHearsOne')} ms, page 1 hears page 2 ${m('oneHearsTwo')} ms `
      + `(page 2 welcomed ${m('welcome')} ms, connected ${m('connected')} ms)`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

run(main, 300000);
