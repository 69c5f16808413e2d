// A JSON WebSocket client that reconnects by itself (with backoff) and resumes with a token.

/** The ws:// or wss:// address of the signaling socket, on this page's own host. */
export function signalingUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/**
 * The signaling message for one trickled ICE candidate of an RTCPeerConnection (null: no more
 * candidates) in the call callId; type "witness_ice" for the witness leg; to: the peer it is
 * relayed to, where there is more than one (a supervisor, a helper).
 */
export function iceMessage(callId, candidate, { type = "ice", to } = {}) {
  return {
    type,
    call_id: callId,
    candidate: candidate ? candidate.candidate : "",
    sdp_mid: candidate ? candidate.sdpMid ?? undefined : undefined,
    sdp_mline_index: candidate ? candidate.sdpMLineIndex ?? undefined : undefined,
    to: to ?? undefined,
  };
}

/**
 * new ReconnectingSocket(urlFor, {onMessage, onState}): urlFor() gives the URL for each attempt
 * (so a fresh token can be put in it); messages are JSON objects with a "type".
 */
export class ReconnectingSocket {
  constructor(urlFor, { onMessage = () => {}, onState = () => {}, onOpen = () => {} } = {}) {
    this.urlFor = urlFor;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onOpen = onOpen;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.queue = [];
    this.timer = null;
    this.fastUntil = 0;
    this._onOnline = () => this.reconnectNow();
    window.addEventListener("online", this._onOnline);
  }

  /** Open the connection (again). */
  connect() {
    if (this.closed) return;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.urlFor());
    this.ws = ws;
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      const resumed = this.attempt > 0;
      this.attempt = 0;
      this.onState("open");
      this.onOpen(resumed);
      for (const msg of this.queue.splice(0)) ws.send(JSON.stringify(msg));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === "string") this.onMessage(msg);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws || this.closed) return;
      this.onState("reconnecting", event.code);
      this.attempt += 1;
      // after the server said it restarts: try every second (it is back in seconds), else back off
      const delay = Date.now() < this.fastUntil ? 1000 : Math.min(8000, 500 * 2 ** Math.min(this.attempt - 1, 4));
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  /** The server said it restarts (notice server_restart): retry every second for the next ms milliseconds. */
  expectRestart(ms = 60000) {
    this.fastUntil = Date.now() + ms;
  }

  /** Drop the current connection and retry at once (after the network came back, or a page resume). */
  reconnectNow() {
    if (this.closed) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return;
    this.connect();
  }

  /** Give up the current connection, even one that looks open (a dead path after a network change), and connect again. */
  restart() {
    if (this.closed) return;
    const old = this.ws;
    this.attempt = Math.max(this.attempt, 1); // the next open is a resume
    this.connect();
    try {
      old?.close();
    } catch {
      // already closing
    }
  }

  /** Say who this page is ({type: "hello", ...fields}): at once, on the socket just opened (call it in
   * onOpen: the hello goes before anything queued while the connection was down). */
  hello(fields) {
    this.ws.send(JSON.stringify({ type: "hello", ...fields }));
  }

  /** Send a message; it waits for the connection when there is none. */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    else this.queue.push(msg);
  }

  /** Whether the socket is open now. */
  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Close for good. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this._onOnline);
    if (this.ws) this.ws.close(1000);
  }
}
