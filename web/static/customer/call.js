// The WebRTC leg of the customer: the agent makes the offer, this side answers, trickles ICE, and
// builds a new RTCPeerConnection only when the agent made a new one (another DTLS fingerprint): an
// offer that restarts ICE on the agent's connection is answered on this side's connection.

import { fingerprintOf } from "../shared/recovery.js";
import { iceMessage } from "../shared/ws.js";

export class CallPeer {
  constructor({ send, onRemoteStream = () => {}, onState = () => {} }) {
    this.send = send;
    this.onRemoteStream = onRemoteStream;
    this.onState = onState;
    this.pc = null;
    this.callId = null;
    this.iceServers = [];
    this.localStream = null;
    this.pendingIce = [];
    this.fresh = true;
    this.generation = 0;
  }

  /** The local microphone and camera to send. */
  setLocalStream(stream) {
    this.localStream = stream;
  }

  /** After a network loss: the next offer starts a new RTCPeerConnection. */
  markStale() {
    this.fresh = true;
  }

  _newPc() {
    if (this.pc) this.pc.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.generation += 1;
    this.pendingIce = [];
    this.fresh = false;
    this.videoSender = null;
    for (const track of this.localStream?.getTracks() ?? []) {
      const sender = pc.addTrack(track, this.localStream);
      if (track.kind === "video") this.videoSender = sender;
    }
    this.heldIce = [];
    this.answerSent = false;
    pc.addEventListener("icecandidate", (event) => {
      if (pc !== this.pc) return;
      const msg = iceMessage(this.callId, event.candidate);
      // the agent can only use candidates after it has the answer: hold them until it is sent
      if (this.answerSent) this.send(msg);
      else this.heldIce.push(msg);
    });
    pc.addEventListener("track", (event) => {
      this.onRemoteStream(event.streams[0] ?? new MediaStream([event.track]));
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "failed") this.fresh = true;
      this.onState(pc.connectionState);
    });
    return pc;
  }

  /** An SDP offer from the agent: answer it (on a new connection when the old one is gone). */
  async handleOffer(callId, sdp) {
    this.callId = callId;
    const known = fingerprintOf(this.pc?.remoteDescription?.sdp);
    const same = known !== null && known === fingerprintOf(sdp);
    const stale = !this.pc || this.pc.connectionState === "closed" || (!same && (this.fresh || known !== null
      || this.pc.connectionState === "failed"));
    const pc = stale ? this._newPc() : this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    for (const c of this.pendingIce.splice(0)) await this._addIce(pc, c);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: "sdp", call_id: callId, kind: "answer", sdp: pc.localDescription.sdp });
    this.answerSent = true;
    for (const msg of this.heldIce.splice(0)) this.send(msg);
  }

  /** A trickled candidate from the agent. */
  async handleIce(msg) {
    const pc = this.pc;
    if (!pc || !pc.remoteDescription) {
      this.pendingIce.push(msg);
      return;
    }
    await this._addIce(pc, msg);
  }

  async _addIce(pc, msg) {
    try {
      if (!msg.candidate) await pc.addIceCandidate(null);
      else await pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid, sdpMLineIndex: msg.sdp_mline_index });
    } catch {
      // a candidate for an older connection: nothing to do
    }
  }

  /** Send another camera track (the rear camera for the ID card) without renegotiating. */
  async replaceVideo(track) {
    if (this.videoSender) await this.videoSender.replaceTrack(track);
  }

  /** Mute or unmute the microphone. */
  setMuted(muted) {
    for (const t of this.localStream?.getAudioTracks() ?? []) t.enabled = !muted;
  }

  /** Close the connection. */
  close() {
    if (this.pc) this.pc.close();
    this.pc = null;
  }
}
