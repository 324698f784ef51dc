// The audio gap while the server is killed (SPEC §9, docs/voice.md: the
// media is peer to peer, so a kill -9 of the server does not interrupt a
// call already set up). The scenario of tests/browser/web_voice.test.js,
// repeated: two pages of one headless Chromium with fake media, in one
// lobby of the real voicebot-server on loopback, hear each other; then
// RUNS times: the server is killed with SIGKILL, stays down DOWNTIME_MS,
// is started again on the same port and data dir, and both pages say hello
// again (resume).
//
//   node bench/voice/kill_gap.js [--runs 3]
//
// Each page samples window.voice.stats() every 100 ms (harness.js's
// startSampler, as the test does) from just before the kill to the moment
// both pages are welcomed again. Printed per run and page, with the median
// over the runs:
//   - down: the largest time between two samples with a rise of
//     packetsReceived from the other page, from the kill to the end of the
//     downtime (the test's window; it allows < 500 ms);
//   - to resume: the same over the whole window, through the restart and
//     the pages' hellos.
// 100 ms is the floor of this measure (the sampling interval); the longest
// interval between two samples is printed too: on a busy machine the
// page's timer runs late, and a gap no longer than it says little.
//
// VB_BUILD_DIR (default build/) holds voicebot-server; /usr/bin/chromium.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  NO_QUOTAS, log, check, requireBinaries, startServer, until, run,
  sleep, makeSpeech, peersOf, welcomed, joinVoice, connected, hears,
  startSampler, stopSampler, largestGap, voiceRoom, median, stepOf,
} = require('../../tests/browser/harness');

const DOWNTIME_MS = 4000; // as in web_voice.test.js
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;

async function main() {
  requireBinaries();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-kill-gap-'));
  const dataDir = path.join(tmp, 'data');
  const ctx = { server: null, pages: [], shots: 'bench-kill-gap' };
  let browser = null;
  const step = (name, fn) => stepOf(ctx, name, fn);
  try {
    const wav = makeSpeech(tmp);
    ctx.server = await startServer(dataDir, 0, 0, { extra: NO_QUOTAS });
    const port = ctx.server.port;
    log(`server on port ${port}; ${RUNS} kills, ${DOWNTIME_MS} ms down each`);
    const room = await voiceRoom(port, 'Kill gap lobby', wav);
    ({ browser } = room);
    const { alice, bob } = room;
    ctx.pages.push(alice, bob);
    const aliceId = await joinVoice(alice, 'alice');
    const bobId = await joinVoice(bob, 'bob');
    await step('each hears the other', async () => {
      await connected(alice, bobId);
      await connected(bob, aliceId);
      await hears(alice, bobId, 'bob');
      await hears(bob, aliceId, 'alice');
    });
    const ids = async (p) => (await peersOf(p)).map((c) => `${c.connection_id} ${c.connectionState}`).join(', ');
    const before = { alice: await ids(alice), bob: await ids(bob) };

    const results = [];
    for (let i = 1; i <= RUNS; i++) {
      const r = await step(`kill ${i}`, async () => {
        await Promise.all([startSampler(alice), startSampler(bob)]);
        await ctx.server.kill('SIGKILL');
        await sleep(DOWNTIME_MS);
        // The end of the downtime in each page's clock (the samples' clock).
        const [aUp, bUp] = await Promise.all([alice, bob].map((p) => p.page.evaluate(() => performance.now())));
        ctx.server = await startServer(dataDir, port, 0, { extra: NO_QUOTAS });
        await until('both pages in the voice room again', async () => (await welcomed(alice)) && (await welcomed(bob)), 30000);
        const [sa, sb] = await Promise.all([stopSampler(alice), stopSampler(bob)]);
        for (const p of [alice, bob]) {
          const now = await ids(p);
          check(now === before[p.name], `${p.name} keeps the same connection (${now})`);
        }
        const down = (samples, upAt) => samples.filter((s) => s.t <= upAt);
        const gaps = (samples, upAt, from) => ({
          down: largestGap(down(samples, upAt), from), resume: largestGap(samples, from),
          interval: largestGap(samples, from).interval,
        });
        return { alice: gaps(sa, aUp, bobId), bob: gaps(sb, bUp, aliceId) };
      });
      results.push(r);
      console.log(`run ${i}: largest gap while down: alice ${r.alice.down.gap} ms, bob ${r.bob.down.gap} ms `
        + `(${r.alice.down.samples} and ${r.bob.down.samples} samples); to the resume: alice ${r.alice.resume.gap} ms, `
        + `bob ${r.bob.resume.gap} ms (${r.alice.resume.samples} and ${r.bob.resume.samples} samples); `
        + `longest sampling interval: alice ${r.alice.interval} ms, bob ${r.bob.interval} ms`);
    }
    const m = (who, k) => median(results.map((r) => r[who][k].gap));
    console.log(`median of ${RUNS}: largest gap while down: alice ${m('alice', 'down')} ms, bob ${m('bob', 'down')} ms; `
      + `to the resume: alice ${m('alice', 'resume')} ms, bob ${m('bob', 'resume')} ms`);
    for (const p of [alice, bob]) check(p.errors.length === 0, `no script errors on ${p.name}'s page ${p.errors.join('; ')}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (ctx.server) await ctx.server.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

run(main, 300000);
