"""Witness benchmark: server CPU per recorded call, against the same calls without the witness.

    python bench/witness.py --calls 1 4 8 16 --seconds 15

Starts ``counter serve`` (plain HTTP, SQLite, in-process bus, the witness wired as in production) in
subprocesses, one per witness mode (``witness_decode``).  For each ``--calls`` value N it places N
concurrent calls through a server (queued, offered, accepted: the signaling of a call; ``--p2p`` adds the
calls' own peer-to-peer video, :func:`signaling.probe.connect_pair`, which never touches the server but
loads this process), three times (``--modes``):

* ``none``: the calls alone (media goes peer to peer; the server only relays signaling);
* ``always``: the customer consents to the recording and both parties open their send-only leg to the
  witness (:class:`signaling.witness.client.WitnessSender`: VP8 video of ``--size`` and Opus silence, both
  encoded once before the run and replayed as packets), and the
  witness decodes every frame of its four tracks while it records them (the witness before on-demand
  decoding, ``witness_decode = "always"``);
* ``on_demand``: the same, with the witness storing the encoded frames as received and decoding
  nothing (no identity check runs in the bench).

After ``--warmup`` seconds it reads the server process's CPU time (user + system, every thread,
from ``/proc/<pid>/stat``) over ``--seconds``; the CPU time is what the calls cost whatever else
the machine runs.  ``server ms/call-s`` is the server CPU per second of call; one core sustains
``1000 / that`` recorded calls.  The frame rates say whether the peers (in this process, encoding
every stream) kept up: a starved sender sends fewer frames and the witness then costs less.
Every recording is checked at the end (closed, segments audited, bytes), and its video frames counted
in the decrypted segments against those the senders sent over the whole call (they stop sending before
the hang-up): ``complete`` when every recording is closed with all its segments audited and at most the
frame in flight when a sender stopped is missing per party.

The run moves itself into a network namespace that holds only ``lo`` (root or CAP_SYS_ADMIN; else
``--no-isolate``), and both processes gather ICE candidates on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import aiohttp
import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import RATE_RULES  # noqa: E402
from bench.signaling import cpu_s, free_port, make_agents, spawn, stop, wait_up  # noqa: E402
from identity.evidence import load_or_create_master_key  # noqa: E402
from signaling import protocol as p  # noqa: E402
from signaling.peer import VideoPeer, loopback_only  # noqa: E402
from signaling.probe import connect_pair  # noqa: E402
from signaling.witness import RecordingStore  # noqa: E402
from signaling.witness.client import WitnessClient, WitnessSender  # noqa: E402
from signaling.witness.recording import vp8_keyframe_size  # noqa: E402

PASSWORD = "bench-pass"
#: ``counter serve`` with ICE restricted to 127.0.0.1 (the witness peer gathers on loopback only).
SERVE = ("import sys; from signaling.peer import loopback_only; loopback_only(); "
         "from counter.cli import main; sys.exit(main(['serve']))")


class EncodedCamera(VideoStreamTrack):
    """A camera whose VP8 is encoded once, before the run: ``loop_s`` of noisy frames (sensor noise of
    standard deviation ``noise`` grey levels over a moving bar, so the encoder spends its bitrate as on a
    real camera) at ``kbit_s``, a key frame every second, replayed at 30 fps as packets.  aiortc sends
    packets as they are, so the peers of this process cost almost nothing and the server's share of the
    machine is not starved by the benchmark's own encoders."""

    _cache: ClassVar[dict[tuple[int, int, float, int], list[bytes]]] = {}

    def __init__(self, width: int, height: int, noise: float, kbit_s: int, loop_s: float = 4.0) -> None:
        super().__init__()
        self.encoded = self.loop(width, height, noise, kbit_s, loop_s)
        self.sent = 0

    @classmethod
    def loop(cls, width: int, height: int, noise: float, kbit_s: int, loop_s: float = 4.0) -> list[bytes]:
        """The encoded frames of the loop (encoded on first use, then shared by every camera)."""
        key = (width, height, noise, kbit_s)
        if key not in cls._cache:
            cls._cache[key] = cls._encode(width, height, noise, kbit_s, round(loop_s * 30))
        return cls._cache[key]

    @staticmethod
    def _encode(width: int, height: int, noise: float, kbit_s: int, frames: int) -> list[bytes]:
        enc = av.CodecContext.create("libvpx", "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = fractions.Fraction(1, 30)
        enc.framerate = fractions.Fraction(30, 1)
        enc.bit_rate = kbit_s * 1000
        enc.options = {"g": "30", "keyint_min": "30", "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        rng = np.random.default_rng(7)
        packets: list[bytes] = []
        for i in range(frames):
            img = np.full((height, width, 3), 96.0)
            x = (i * 4) % width
            img[:, x : x + 8] = 255.0
            img += rng.normal(0.0, noise, img.shape) if noise else 0.0
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="bgr24")
            frame.pts = i
            packets += [bytes(pk) for pk in enc.encode(frame.reformat(format="yuv420p"))]
        packets += [bytes(pk) for pk in enc.encode(None)]
        if vp8_keyframe_size(packets[0]) is None:
            raise SystemExit("the pre-encoded camera loop must start with a key frame")
        return packets

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        pts, time_base = await self.next_timestamp()
        packet = av.Packet(self.encoded[self.sent % len(self.encoded)])
        packet.pts = pts
        packet.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        self.sent += 1
        return packet


class EncodedSilence(MediaStreamTrack):
    """A microphone whose Opus (silence, 20 ms frames, 48 kHz) is encoded once and replayed as packets, as
    :class:`EncodedCamera` does for video: the benchmark's own senders must not starve the server."""

    kind = "audio"
    _packet: ClassVar[bytes | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._n = 0

    @classmethod
    def payload(cls) -> bytes:
        if cls._packet is None:
            enc = av.CodecContext.create("libopus", "w")
            enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960 * 2), np.int16), format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, 0
            packets = [bytes(pk) for pk in enc.encode(frame)]
            while not packets:
                frame.pts = (frame.pts or 0) + 960
                packets = [bytes(pk) for pk in enc.encode(frame)]
            cls._packet = packets[0]
        return cls._packet

    async def recv(self) -> av.Packet[Any]:  # type: ignore[override]
        if self._start is None:
            self._start = time.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._n * 0.02 - time.time()))
        packet = av.Packet(self.payload())
        packet.pts = self._n * 960
        packet.time_base = fractions.Fraction(1, 48000)
        self._n += 1
        return packet


def bare_decode_ms(packets: list[bytes], repeat: int = 3) -> float:
    """CPU ms to decode one frame of ``packets`` with PyAV's libvpx, nothing else: the floor of what
    receiving that video costs, whoever decodes it."""
    started = time.process_time()
    for _ in range(repeat):
        dec = av.CodecContext.create("libvpx", "r")
        for data in packets:
            dec.decode(av.Packet(data))
    return (time.process_time() - started) * 1000.0 / (repeat * len(packets))


@dataclass
class Run:
    """One measured window of ``calls`` concurrent calls."""

    calls: int
    witness: str  # "none", or the witness_decode mode of the server that recorded the calls
    seconds: float
    server_cpu_s: float
    bench_cpu_s: float
    call_fps: float
    witness_fps: float
    loadavg: float
    frames_sent: int = 0  # video frames sent to the witness over the whole calls (both parties)
    frames_recorded: int = 0  # video frames in the recordings' segments
    udp_drops: int = 0  # datagrams the kernel dropped for full socket buffers (a starved receiver), whole run
    recordings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def server_ms_per_call_s(self) -> float:
        return self.server_cpu_s * 1000.0 / (self.calls * self.seconds)

    @property
    def recorded_kbit_s(self) -> float:
        """Mean size of the recordings per second of call (both parties, all tracks)."""
        rates = [r["bytes"] * 8 / r["duration_ms"] for r in self.recordings if r["duration_ms"]]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def recorded_fps(self) -> float:
        """Mean video frame rate per party in the recordings."""
        rates = [r["video_fps"] for r in self.recordings]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def complete(self) -> bool:
        """Every recording closed, all its segments audited, every frame sent recorded (but the one in
        flight when each sender stopped)."""
        closed = len(self.recordings) == self.calls and all(
            r["ended_at"] is not None and r["segments"] and r["audited_segments"] == r["segments"]
            for r in self.recordings)
        return closed and self.frames_recorded >= self.frames_sent - 2 * self.calls

    @property
    def bench_ms_per_call_s(self) -> float:
        return self.bench_cpu_s * 1000.0 / (self.calls * self.seconds)


@dataclass
class _Call:
    call_id: str
    agent: WitnessClient
    customer: WitnessClient
    peers: tuple[VideoPeer, ...]
    senders: list[WitnessSender]
    tracks: list[EncodedCamera]


def udp_rcvbuf_errors() -> int:
    """UDP datagrams dropped so far in this network namespace because a socket's buffer was full."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = [line.split() for line in Path("/proc/self/net/snmp").read_text().splitlines()
                 if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    return 0


def _frames(calls: list[_Call]) -> tuple[int, int]:
    """Frames received by the call's peers, frames sent to the witness (both parties, all calls)."""
    received = sum(peer.frames for c in calls for peer in c.peers)
    sent = sum(track.sent for c in calls for track in c.tracks)
    return received, sent


async def _place(base: str, user: str, witness: bool, size: tuple[int, int], noise: float,
                 kbit_s: int, stack: contextlib.AsyncExitStack, p2p: bool) -> _Call:
    staff_http = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
    cust_http = await stack.enter_async_context(aiohttp.ClientSession())
    agent = cast(WitnessClient, await WitnessClient.staff(staff_http, base, user, PASSWORD))
    stack.push_async_callback(agent.close)
    customer = cast(WitnessClient, await WitnessClient.customer(cust_http, base))
    stack.push_async_callback(customer.close)
    if witness:
        await customer.consent_to_recording()
    await agent.send(p.Presence(state="available"))
    await agent.expect(p.PresenceAck, within=30)
    await customer.send(p.Join())
    offer = await agent.expect(p.CallOffer, within=30)
    await agent.send(p.Accept(call_id=offer.call_id))
    await customer.expect(p.CallStarted, within=30)
    await agent.expect(p.CallStarted, within=30)
    peers: tuple[VideoPeer, ...] = ()
    if p2p:
        peers = await connect_pair(agent, customer, offer.call_id, within=30)
        for peer in peers:
            stack.push_async_callback(peer.close)
    call = _Call(offer.call_id, agent, customer, peers, [], [])
    if witness:
        for client in (customer, agent):
            track = EncodedCamera(*size, noise, kbit_s)
            sender = WitnessSender(track, EncodedSilence())
            stack.push_async_callback(sender.close)
            await sender.connect(client, offer.call_id, within=30)
            call.senders.append(sender)
            call.tracks.append(track)
    return call


def _video_frames(data: Path, recording_id: str) -> int:
    """Video frames (both parties) in a recording's segments, decrypted with the server's master key."""
    store = RecordingStore(data / "recordings", load_or_create_master_key(data / "master.key"))
    files = store.open(recording_id)
    frames = 0
    for index in files.segments():
        with av.open(io.BytesIO(files.read_segment(index)), "r") as container:
            frames += sum(1 for packet in container.demux(*container.streams.video) if packet.size > 0)
    return frames


async def _recordings(data: Path, call_ids: list[str], within: float = 30.0) -> list[dict[str, Any]]:
    """The recordings of ``call_ids`` once the server closed them all (or what there is after ``within``),
    with the frame rate recorded per party over the whole recording."""
    from storage import open_database

    db_url = f"sqlite:///{data / 'counter.db'}"
    db = await open_database(db_url)
    try:
        deadline = time.monotonic() + within
        while True:
            found = await db.fetch("SELECT id, call_id, segments, bytes, duration_ms, ended_at FROM recordings")
            rows = [dict(r) for r in found if r["call_id"] in call_ids]
            done = len(rows) == len(call_ids) and all(r["ended_at"] is not None for r in rows)
            if done or time.monotonic() > deadline:
                for row in rows:
                    row["audited_segments"] = await db.fetchval(
                        "SELECT COUNT(*) FROM audit_entries WHERE action = 'recording.segment' AND session_id = $1",
                        row["call_id"])
                    frames = row["video_frames"] = await asyncio.to_thread(_video_frames, data, row["id"])
                    row["video_fps"] = frames / 2 / max(0.001, row["duration_ms"] / 1000)
                return rows
            await asyncio.sleep(0.2)
    finally:
        await db.close()


async def measure(base: str, data: Path, server_pid: int, users: list[str], mode: str, seconds: float,
                  warmup: float, size: tuple[int, int], noise: float, kbit_s: int, p2p: bool = False) -> Run:
    """Place ``len(users)`` calls (one agent each), measure ``seconds`` after ``warmup``, hang up."""
    witness = mode != "none"
    drops = udp_rcvbuf_errors()
    async with contextlib.AsyncExitStack() as stack:
        calls = [await _place(base, user, witness, size, noise, kbit_s, stack, p2p) for user in users]
        await asyncio.sleep(warmup)
        frames0, cpu0, mine0, t0 = _frames(calls), cpu_s(server_pid), cpu_s(os.getpid()), time.perf_counter()
        await asyncio.sleep(seconds)
        frames1, cpu1, mine1, t1 = _frames(calls), cpu_s(server_pid), cpu_s(os.getpid()), time.perf_counter()
        load = os.getloadavg()[0]
        for call in calls:  # the parties stop sending to the witness, then hang up: every frame sent is due
            for sender in call.senders:
                await sender.close()
        await asyncio.sleep(0.5)
        sent = sum(track.sent for c in calls for track in c.tracks)
        for call in calls:
            await call.agent.send(p.Hangup(call_id=call.call_id))
            await call.customer.expect(p.CallEnded, within=30)
    span = t1 - t0
    run = Run(
        calls=len(users), witness=mode, seconds=span, server_cpu_s=cpu1 - cpu0, bench_cpu_s=mine1 - mine0,
        call_fps=(frames1[0] - frames0[0]) / (2 * len(users) * span) if p2p else 0.0,
        witness_fps=(frames1[1] - frames0[1]) / (2 * len(users) * span) if witness else 0.0,
        loadavg=load, frames_sent=sent, udp_drops=udp_rcvbuf_errors() - drops,
    )
    if witness:
        run.recordings = await _recordings(data, [c.call_id for c in calls])
        run.frames_recorded = sum(r["video_frames"] for r in run.recordings)
    return run


def table(runs: list[Run], size: tuple[int, int]) -> str:
    """The markdown table of the runs, each witness row beside its baseline."""
    columns = ["calls", "witness (decode)", "server CPU ms per call-s", "extra for the witness ms/call-s",
               "recorded calls per core", f"witness fps per party ({size[0]}x{size[1]}): sent, recorded",
               "video frames recorded / sent",
               "recorded kbit/s per call", "call fps per peer", "bench-process CPU ms/call-s", "load avg"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    baseline = {r.calls: r for r in runs if r.witness == "none"}
    for r in runs:
        base = baseline.get(r.calls)
        cells = [str(r.calls), r.witness, f"{r.server_ms_per_call_s:.1f}", "", "", "", "", "",
                 f"{r.call_fps:.1f}", f"{r.bench_ms_per_call_s:.0f}", f"{r.loadavg:.1f}"]
        if r.witness != "none":
            if base is not None:
                cells[3] = f"{r.server_ms_per_call_s - base.server_ms_per_call_s:.1f}"
            cells[4] = f"{1000.0 / max(0.001, r.server_ms_per_call_s):.1f}"
            cells[5] = f"{r.witness_fps:.1f}, {r.recorded_fps:.1f}"
            cells[6] = f"{r.frames_recorded} / {r.frames_sent}" + (
                "" if r.complete else f" (incomplete; {r.udp_drops} datagrams dropped by the kernel)")
            cells[7] = f"{r.recorded_kbit_s:.0f}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Each mode's server: ``witness_decode`` and ``witness_drain_ms`` (``none`` runs on the on_demand server).
SERVERS: dict[str, tuple[str, int]] = {
    "always": ("always", 0),  # the decoding witness, reading each datagram as it lands
    "on_demand_each": ("on_demand", 0),  # stores the packets, reading each datagram as it lands
    "on_demand": ("on_demand", 100),  # stores the packets, reading its sockets every 100 ms
}
MODES = ("none", *SERVERS)


async def bench(calls: list[int], seconds: float, warmup: float, size: tuple[int, int], noise: float,
                kbit_s: int, tmp: Path, modes: list[str], p2p: bool = False) -> list[Run]:
    """Run every mode for every number of calls, side by side (``none`` on the first server)."""
    servers: dict[str, tuple[str, Path, Any]] = {}
    try:
        for server in dict.fromkeys("on_demand" if m == "none" else m for m in modes):
            decode, drain_ms = SERVERS[server]
            data = tmp / f"server-{server}"
            await make_agents(data, sum(calls) * len(modes))
            port = free_port()
            env = {
                **os.environ,
                "COUNTER_CONFIG": str(tmp / "none.toml"),
                "COUNTER_TLS": "false",
                "COUNTER_HOST": "127.0.0.1",
                "COUNTER_PORT": str(port),
                "COUNTER_DATA_DIR": str(data),
                "COUNTER_LOG_LEVEL": "WARNING",
                "COUNTER_REDIS_URL": "",
                "COUNTER_SIGNALING_OFFER_TIMEOUT_S": "60",
                "COUNTER_WITNESS_DECODE": decode,
                "COUNTER_WITNESS_DRAIN_MS": str(drain_ms),
                **{f"COUNTER_RATELIMIT_{rule}": "off" for rule in RATE_RULES},
            }
            proc = spawn([sys.executable, "-c", SERVE], env, tmp / f"server-{server}.log")
            base = f"http://127.0.0.1:{port}"
            servers[server] = (base, data, proc)
            await wait_up(base + "/healthz", proc)
        runs: list[Run] = []
        next_agent = 0
        for n in calls:
            for mode in modes:
                base, data, proc = servers["on_demand" if mode == "none" else mode]
                users = [f"bench{next_agent + i}" for i in range(n)]
                next_agent += n
                run = await measure(base, data, proc.pid, users, mode, seconds, warmup, size, noise, kbit_s, p2p)
                runs.append(run)
                print(json.dumps({**asdict(run), "server_ms_per_call_s": round(run.server_ms_per_call_s, 2),
                                  "complete": run.complete if mode != "none" else None}),
                      file=sys.stderr, flush=True)
                await asyncio.sleep(1.0)
        return runs
    finally:
        for _, _, proc in servers.values():
            stop(proc)


def _isolate() -> str:
    """Move this process (single-threaded still) into a network namespace with only ``lo`` up."""
    from tests.browser.isolation import _unshare_net

    why = _unshare_net()
    if why is not None:
        raise SystemExit(f"cannot isolate the network ({why}): run as root, or pass --no-isolate")
    return "lo-only network namespace"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="none: no witness; always: the decoding witness; on_demand: the packet-storing one")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--size", default="640x480", help="video of the witness legs, WxH")
    parser.add_argument("--noise", type=float, default=6.0, help="camera noise of the witness video (0: none)")
    parser.add_argument("--kbit-s", type=int, default=800, help="bitrate of the witness video")
    parser.add_argument("--p2p", action="store_true",
                        help="the calls' own peer-to-peer video too (never touches the server; loads this process)")
    parser.add_argument("--no-isolate", action="store_true", help="stay in this network namespace")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    network = "unisolated (ICE on 127.0.0.1 only)" if args.no_isolate else _isolate()
    loopback_only()
    packets = EncodedCamera.loop(width, height, args.noise, args.kbit_s)
    decode_ms = bare_decode_ms(packets)
    with tempfile.TemporaryDirectory() as tmp:
        runs = asyncio.run(bench(args.calls, args.seconds, args.warmup, (width, height), args.noise, args.kbit_s,
                                 Path(tmp), args.modes, args.p2p))
    print(f"# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {network}, "
          f"{args.seconds:.0f} s measured per run after {args.warmup:.0f} s warm-up")
    print(table(runs, (width, height)))
    print(f"# bare VP8 decode of the same witness video (PyAV libvpx, this process): {decode_ms:.2f} ms a frame, "
          f"{decode_ms * 60:.1f} ms per call-s for two parties at 30 fps")
    for r in runs:
        if r.witness != "none":
            for rec in r.recordings:
                print(f"# {r.calls} calls, {r.witness}: recording of {rec['call_id']}: {rec['segments']} segments "
                      f"({rec['audited_segments']} audited), {rec['bytes'] / 1e6:.2f} MB, "
                      f"{rec['duration_ms'] / 1000:.1f} s, {rec['video_fps']:.1f} fps a party, "
                      f"closed {rec['ended_at'] is not None}")


if __name__ == "__main__":
    main()
