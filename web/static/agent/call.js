// The agent's WebRTC legs: the call with the customer (the agent offers) and, when a supervisor
// listens in silently, a second send-only connection to that supervisor.

import { iceMessage } from "../shared/ws.js";

export class OfferPeer {
  /**
   * send(msg): send a signaling message; onRemote(stream); onState(state).
   * ``to`` addresses a monitoring supervisor ("supervisor:<name>"); null for the customer.
   */
  constructor({ send, iceServers = [], to = null, onRemote = () => {}, onState = () => {} }) {
    this.send = send;
    this.to = to;
    this.callId = null;
    this.onRemote = onRemote;
    this.onState = onState;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("icecandidate", (event) => this.send(iceMessage(this.callId, event.candidate, { to: this.to })));
    this.pc.addEventListener("track", (event) => this.onRemote(event.streams[0] ?? new MediaStream([event.track])));
    this.pc.addEventListener("connectionstatechange", () => this.onState(this.pc.connectionState));
    this.pendingIce = [];
  }

  /** Add our tracks (own camera and microphone) and send the offer. */
  async offer(callId, streams, { receive = true } = {}) {
    this.callId = callId;
    for (const stream of streams) {
      for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    }
    if (receive && !streams.some((s) => s.getVideoTracks().length)) this.pc.addTransceiver("video", { direction: "recvonly" });
    if (receive && !streams.some((s) => s.getAudioTracks().length)) this.pc.addTransceiver("audio", { direction: "recvonly" });
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.send({ type: "sdp", call_id: callId, kind: "offer", sdp: this.pc.localDescription.sdp, to: this.to ?? undefined });
  }

  /** Offer again, restarting ICE (after a network loss: see shared/recovery.js). */
  async reoffer() {
    const offer = await this.pc.createOffer({ iceRestart: true });
    await this.pc.setLocalDescription(offer);
    this.send({ type: "sdp", call_id: this.callId, kind: "offer", sdp: this.pc.localDescription.sdp, to: this.to ?? undefined });
  }

  /** The answer from the other side (one that comes after the offer was taken back is dropped). */
  async answer(sdp) {
    if (this.pc.signalingState !== "have-local-offer") return;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    for (const c of this.pendingIce.splice(0)) await this._add(c);
  }

  /** A trickled candidate from the other side. */
  async ice(msg) {
    if (!this.pc.remoteDescription) this.pendingIce.push(msg);
    else await this._add(msg);
  }

  async _add(msg) {
    try {
      if (!msg.candidate) await this.pc.addIceCandidate(null);
      else await this.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid, sdpMLineIndex: msg.sdp_mline_index });
    } catch {
      // a candidate of an older connection
    }
  }

  /** Mute or unmute our microphone. */
  setMuted(muted) {
    for (const sender of this.pc.getSenders()) {
      if (sender.track?.kind === "audio") sender.track.enabled = !muted;
    }
  }

  close() {
    this.pc.close();
  }
}

/** Answer an offer (the supervisor's side of a silent join): receive only. */
export class AnswerPeer {
  constructor({ send, iceServers = [], to, onRemote = () => {}, onState = () => {} }) {
    this.send = send;
    this.to = to;
    this.onRemote = onRemote;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pendingIce = [];
    this.pc.addEventListener("icecandidate", (event) => this.send(iceMessage(this.callId, event.candidate, { to: this.to })));
    this.pc.addEventListener("track", (event) => this.onRemote(event.streams[0] ?? new MediaStream([event.track]), event.track));
    this.pc.addEventListener("connectionstatechange", () => onState(this.pc.connectionState));
  }

  async handleOffer(callId, sdp) {
    this.callId = callId;
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    for (const c of this.pendingIce.splice(0)) await OfferPeer.prototype._add.call(this, c);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.send({ type: "sdp", call_id: callId, kind: "answer", sdp: this.pc.localDescription.sdp, to: this.to });
  }

  async ice(msg) {
    if (!this.pc.remoteDescription) this.pendingIce.push(msg);
    else await OfferPeer.prototype._add.call(this, msg);
  }

  close() {
    this.pc.close();
  }
}

/** A JPEG of the current frame of a <video> (for the identity checks), as a Blob. */
export function grabFrame(video, quality = 0.92) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return Promise.resolve(null);
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.getContext("2d").drawImage(video, 0, 0, w, h);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}
