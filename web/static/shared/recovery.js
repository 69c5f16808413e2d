// Keeping a call through network loss and change: the signaling socket is probed (ping/pong) and
// opened again as soon as it is dead, and the offering side restarts ICE (restartIce) when the
// media path is lost. A phone that moved to another network keeps a socket that looks open but
// goes nowhere: only a probe finds that out in seconds instead of minutes.

const PROBE_MS = 2000; // no pong within this: the socket is dead
const RETRY_MS = 1000; // while the media is down: probe and retry this often
const RESTART_AFTER_MS = 1500; // ICE "disconnected" this long: restart it
const DEAD_AFTER = 2; // this many probes in a row without a pong: the socket is dead
const REOPEN_EVERY_MS = 10000; // an open socket is given up at most this often (a slow server is not a dead one)

/** Whether the raw WebSocket of ws answers a ping within PROBE_MS. */
function probe(ws) {
  const raw = ws.ws;
  if (!raw || raw.readyState !== WebSocket.OPEN) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok) => {
      clearTimeout(timer);
      raw.removeEventListener("message", onMessage);
      resolve(ok);
    };
    const onMessage = (event) => {
      if (typeof event.data === "string" && event.data.includes('"pong"')) done(true);
    };
    const timer = setTimeout(() => done(false), PROBE_MS);
    raw.addEventListener("message", onMessage);
    raw.send(JSON.stringify({ type: "ping" }));
  });
}

/**
 * Watch the network for a call: ws (a ReconnectingSocket), mediaDown() says whether the call's media
 * is lost now. On a network change, an ICE loss, or every RETRY_MS while the media is down, the socket
 * is probed and, when dead, opened again (the server then puts the call through again).
 * Returns stop().
 */
export function watchNetwork({ ws, mediaDown }) {
  let busy = false;
  let connectingSince = 0;
  let failures = 0;
  let reopened = 0;
  const check = async () => {
    if (busy || ws.closed) return;
    busy = true;
    try {
      const raw = ws.ws;
      if (raw && raw.readyState === WebSocket.CONNECTING) {
        // a connect attempt made while the link was down may hang: start a fresh one
        if (!connectingSince) connectingSince = Date.now();
        if (Date.now() - connectingSince > 3000) {
          connectingSince = 0;
          ws.restart();
        }
      } else if (!raw || raw.readyState !== WebSocket.OPEN) {
        connectingSince = 0;
        ws.reconnectNow();
      } else if (await probe(ws)) {
        failures = 0;
      } else if (++failures >= DEAD_AFTER && Date.now() - reopened > REOPEN_EVERY_MS) {
        connectingSince = 0;
        failures = 0;
        reopened = Date.now();
        ws.restart();
      }
    } finally {
      busy = false;
    }
  };
  const onChange = () => check();
  window.addEventListener("online", onChange);
  navigator.connection?.addEventListener?.("change", onChange);
  const timer = setInterval(() => {
    if (mediaDown()) check();
  }, RETRY_MS);
  return {
    check,
    stop() {
      clearInterval(timer);
      window.removeEventListener("online", onChange);
      navigator.connection?.removeEventListener?.("change", onChange);
    },
  };
}

/**
 * The offering side of a connection: restart ICE (restartIce and a new offer through renegotiate())
 * when it has been "disconnected" for RESTART_AFTER_MS, at once when "failed", and again every
 * RETRY_MS * 2 until it is back. Returns stop().
 */
export function keepIceAlive(pc, renegotiate) {
  let timer = null;
  let last = 0;
  const restart = async () => {
    if (pc.connectionState === "closed" || pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed") return;
    if (Date.now() - last < RETRY_MS * 2) return;
    last = Date.now();
    try {
      if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
      pc.restartIce();
      await renegotiate();
    } catch (err) {
      console.warn("ICE restart", err);
    }
  };
  const onState = () => {
    clearInterval(timer);
    timer = null;
    const s = pc.iceConnectionState;
    if (s === "failed") restart();
    if (s === "disconnected" || s === "failed") {
      setTimeout(restart, RESTART_AFTER_MS);
      timer = setInterval(restart, RETRY_MS * 2);
    }
  };
  pc.addEventListener("iceconnectionstatechange", onState);
  return () => {
    clearInterval(timer);
    pc.removeEventListener("iceconnectionstatechange", onState);
  };
}

/** The DTLS fingerprint of an SDP (the same for every offer of one RTCPeerConnection). */
export function fingerprintOf(sdp) {
  const m = /^a=fingerprint:(.+)$/m.exec(sdp ?? "");
  return m ? m[1].trim() : null;
}

/** Send track instead of the stopped one of its kind on pc (no renegotiation). */
export async function replaceTrackIn(pc, track) {
  if (!pc || pc.connectionState === "closed") return;
  const sender = pc.getTransceivers().find((t) => t.sender.track?.kind === track.kind || t.receiver.track?.kind === track.kind)?.sender;
  if (sender) await sender.replaceTrack(track);
}
