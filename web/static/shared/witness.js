// The send-only leg to the server's witness (recording 双录, identity frames), protocol v1
// "Witness" additions: witness_sdp (offer -> answer) and witness_ice on the signaling socket.

import { iceMessage } from "./ws.js";

export class WitnessLeg {
  /** send(msg) puts a message on the signaling socket; onState(connectionState) reports progress. */
  constructor({ send, iceServers = [], onState = () => {} }) {
    this.send = send;
    this.callId = null;
    this.offered = false;
    this.held = [];
    this.videoSender = null;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("icecandidate", (event) => {
      const msg = iceMessage(this.callId, event.candidate, { type: "witness_ice" });
      // the witness takes candidates only once it has the offer
      if (this.offered) this.send(msg);
      else this.held.push(msg);
    });
    this.pc.addEventListener("connectionstatechange", () => onState(this.pc.connectionState));
  }

  /** Offer the tracks of stream, send-only, for the call callId. */
  async offer(callId, stream) {
    this.callId = callId;
    for (const track of stream.getTracks()) {
      const t = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (track.kind === "video") this.videoSender = t.sender;
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    this.send({ type: "witness_sdp", call_id: callId, kind: "offer", sdp: this.pc.localDescription.sdp });
    this.offered = true;
    for (const msg of this.held.splice(0)) this.send(msg);
  }

  /** The witness's answer. */
  async answer(sdp) {
    if (this.pc.signalingState === "have-local-offer") await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** Record another camera (the rear one for the ID card) on the same leg. */
  async replaceVideo(track) {
    if (this.videoSender) await this.videoSender.replaceTrack(track);
  }

  /** The connection's state ("new", "connecting", "connected", "failed", "closed"...). */
  get state() {
    return this.pc.connectionState;
  }

  close() {
    this.pc.close();
  }
}
