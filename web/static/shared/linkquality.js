// Connection quality from getStats (loss, round trip, bitrates) and the bandwidth policy of a call:
// caps on every leg, audio first. Below VIDEO_MIN_KBPS of estimated upload with the link congested
// (loss or a long round trip) the page's own video is paused (the sound goes on); it is tried again
// every PROBE_EVERY_MS and kept when the link stays clear while it flows (the estimate of a link
// that came back grows only slowly, so loss and round trip judge), so the video comes back by itself.

/** Caps per leg. The witness gets less, at full 640x480 so that faces and ID cards stay legible. */
export const CAPS = {
  call: { video: { maxBitrate: 600_000, maxFramerate: 15 }, audio: { maxBitrate: 40_000 } },
  witness: { video: { maxBitrate: 300_000, maxFramerate: 10 }, audio: { maxBitrate: 32_000 } },
};

const SAMPLE_MS = 1000;
export const VIDEO_MIN_KBPS = 200; // below this estimate for LOW_SAMPLES samples: audio only
const LOW_SAMPLES = 2;
const LOSS_PAUSE_PCT = 15;
const CONGESTED_LOSS_PCT = 5;
const CONGESTED_RTT_MS = 300;
const PROBE_EVERY_MS = 3000; // while paused: try the video again this often
const PROBE_FOR_MS = 2000; // and judge the link after this long
const STILL_SAMPLES = 2; // no video frames in while sound comes in: the other side paused its video
const MOVING_SAMPLES = 3; // frames again for this many samples: the other side's video is back

/** Set caps (and sound first) on every sender of pc that has a track; true once applied. */
export async function applyCaps(pc, caps) {
  let applied = false;
  for (const sender of pc.getSenders()) {
    const kind = sender.track?.kind;
    const cap = kind && caps[kind];
    if (!cap) continue;
    const params = sender.getParameters();
    if (!params.encodings?.length) continue;
    const enc = params.encodings[0];
    Object.assign(enc, cap);
    enc.priority = kind === "audio" ? "high" : "low";
    enc.networkPriority = enc.priority;
    try {
      await sender.setParameters(params);
      applied = true;
    } catch {
      // renegotiating now: the next sample tries again
    }
  }
  return applied;
}

async function setVideoActive(pc, active) {
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== "video") continue;
    const params = sender.getParameters();
    if (!params.encodings?.length || params.encodings[0].active === active) continue;
    params.encodings[0].active = active;
    try {
      await sender.setParameters(params);
    } catch {
      // renegotiating now: the next sample tries again
    }
  }
}

/** "good", "fair" or "poor" from a sample. */
export function levelOf({ rttMs, lossPct, availKbps }) {
  if (lossPct > 10 || rttMs > 800 || (availKbps !== null && availKbps < VIDEO_MIN_KBPS)) return "poor";
  if (lossPct > 2 || rttMs > 300 || (availKbps !== null && availKbps < 500)) return "fair";
  return "good";
}

/**
 * Watch one connection (getPc() gives the current one, it may change after a recovery):
 * onSample({rttMs, lossPct, upKbps, downKbps, availKbps, level}) every second; onMedia(mode) when
 * the call goes "audio_only" (either side's video paused) and back to "video". ``pause: false`` for a
 * leg that keeps its video (the witness: recorded at its cap). Returns stop().
 */
export function watchLink({ getPc, caps = CAPS.call, pause = true, onSample = () => {}, onMedia = () => {} }) {
  let prev = null;
  let prevPc = null;
  let capped = null;
  let low = 0;
  let paused = false;
  let pausedAt = 0;
  let probingSince = 0;
  let still = 0;
  let moving = 0;
  let remotePaused = false;
  let mode = "video";
  const tick = async () => {
    const pc = getPc();
    if (!pc || pc.connectionState !== "connected") return;
    if (pc !== prevPc) {
      prevPc = pc;
      prev = null;
      capped = null;
      paused = false;
      probingSince = 0;
    }
    if (capped !== pc && (await applyCaps(pc, caps))) capped = pc;
    const now = { at: performance.now(), up: 0, down: 0, audioIn: 0, videoIn: 0, lost: 0, got: 0, rtt: null, avail: null };
    (await pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") now.up += s.bytesSent ?? 0;
      if (s.type === "inbound-rtp") {
        now.down += s.bytesReceived ?? 0;
        now.lost += Math.max(0, s.packetsLost ?? 0);
        now.got += s.packetsReceived ?? 0;
        if (s.kind === "audio") now.audioIn += s.packetsReceived ?? 0;
        if (s.kind === "video") now.videoIn += s.framesDecoded ?? 0;
      }
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        if (s.currentRoundTripTime !== undefined) now.rtt = s.currentRoundTripTime * 1000;
        if (s.availableOutgoingBitrate !== undefined) now.avail = s.availableOutgoingBitrate / 1000;
      }
    });
    const last = prev;
    prev = now;
    if (!last) return;
    const secs = (now.at - last.at) / 1000;
    const lost = now.lost - last.lost;
    const got = now.got - last.got;
    const sample = {
      rttMs: Math.round(now.rtt ?? 0),
      lossPct: lost + got > 0 ? Math.round((1000 * lost) / (lost + got)) / 10 : 0,
      upKbps: Math.round((8 * (now.up - last.up)) / 1000 / secs),
      downKbps: Math.round((8 * (now.down - last.down)) / 1000 / secs),
      availKbps: now.avail === null ? null : Math.round(now.avail),
    };
    sample.level = levelOf(sample);
    // our own video: paused when the estimate is too low for it, tried again now and then
    const congested = sample.lossPct > CONGESTED_LOSS_PCT || sample.rttMs > CONGESTED_RTT_MS;
    const starved = sample.availKbps !== null && sample.availKbps < VIDEO_MIN_KBPS;
    const weak = (starved && congested) || sample.lossPct > LOSS_PAUSE_PCT;
    low = weak && pause ? low + 1 : 0;
    const t = performance.now();
    if (!paused && low >= LOW_SAMPLES && !probingSince) {
      paused = true;
      pausedAt = t;
      await setVideoActive(pc, false);
    } else if (probingSince && t - probingSince >= PROBE_FOR_MS) {
      probingSince = 0;
      if (congested) {
        paused = true;
        pausedAt = t;
        await setVideoActive(pc, false);
      }
    } else if (paused && t - pausedAt >= PROBE_EVERY_MS) {
      paused = false;
      probingSince = t;
      low = 0;
      await setVideoActive(pc, true);
    }
    // the other side's video: frames stopped while its sound still comes in
    const framesIn = now.videoIn - last.videoIn;
    const soundIn = now.audioIn - last.audioIn;
    if (framesIn > 0) {
      moving += 1;
      still = 0;
    } else if (soundIn > 0) {
      still += 1;
      moving = 0;
    }
    remotePaused = remotePaused ? moving < MOVING_SAMPLES : still >= STILL_SAMPLES;
    // a probe is not "back" yet: the screens speak only when the video stays
    const next = paused || probingSince || remotePaused ? "audio_only" : "video";
    sample.media = next;
    onSample(sample);
    if (next !== mode) {
      mode = next;
      onMedia(mode);
    }
  };
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      await tick();
    } catch (err) {
      console.warn("link quality", err);
    } finally {
      running = false;
    }
  }, SAMPLE_MS);
  return () => clearInterval(timer);
}

/** The call's figures so far (median round trip, mean loss and bitrates, seconds audio only, worst
 * level), as POST /api/calls/{call_id}/link takes them. */
export class LinkSummary {
  constructor() {
    this.rtts = [];
    this.loss = 0;
    this.up = 0;
    this.down = 0;
    this.audioOnly = 0;
    this.worst = "good";
  }

  add(s) {
    this.rtts.push(s.rttMs);
    this.loss += s.lossPct;
    this.up += s.upKbps;
    this.down += s.downKbps;
    if (s.media === "audio_only") this.audioOnly += 1;
    const order = ["good", "fair", "poor"];
    if (order.indexOf(s.level) > order.indexOf(this.worst)) this.worst = s.level;
  }

  get samples() {
    return this.rtts.length;
  }

  toJSON() {
    const n = Math.max(1, this.samples);
    const sorted = [...this.rtts].sort((a, b) => a - b);
    const round = (v) => Math.round(v * 10) / 10;
    return {
      samples: this.samples, rtt_ms: sorted[Math.floor(sorted.length / 2)] ?? 0, loss_pct: round(this.loss / n),
      up_kbps: round(this.up / n), down_kbps: round(this.down / n), audio_only_s: this.audioOnly, worst: this.worst,
    };
  }
}
