"""`store-edge`: the edge's command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from store_edge import __version__
from store_edge.errors import ConfigError


def _cmd_simulate(args: argparse.Namespace) -> int:
    from store_edge.layout.loader import load_store
    from store_edge.sim.generate import random_scenario
    from store_edge.sim.scenario import load_scenario
    from store_edge.sim.simulator import simulate

    store = load_store(args.store)
    if args.scenario:
        scenario = load_scenario(args.scenario)
        if args.seed is not None:
            scenario = scenario.model_copy(update={"seed": args.seed})
        source: str | Path = args.scenario
    else:
        if args.shoppers is None or args.minutes is None:
            print("store-edge simulate: give --scenario FILE, or --shoppers N and --minutes M", file=sys.stderr)
            return 2
        scenario = random_scenario(store, args.shoppers, args.minutes, args.seed or 0)
        source = "<generated>"
    result = simulate(
        store,
        scenario,
        args.out,
        store_text=Path(args.store).read_text(encoding="utf-8"),
        scenario_source=source,
        frames=args.frames,
        frame_fps=args.frame_fps,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(summary_dict(result), indent=2))
    else:
        print_summary(result)
    return 0


def summary_dict(result: object) -> dict[str, object]:
    from store_edge.sim.simulator import SimulationResult

    assert isinstance(result, SimulationResult)
    plan = result.plan
    return {
        "out": str(result.out),
        "bytes": result.out.stat().st_size,
        "store": plan.store.store_id,
        "scenario": plan.scenario.name,
        "seed": plan.scenario.seed,
        "duration_s": result.duration_s,
        "visits": len(plan.visits),
        "shoppers": len(plan.shoppers),
        "actions": dict(Counter(a.kind for a in plan.actions)),
        "wrong_place_returns": sum(a.misplaced for a in plan.actions),
        "messages": dict(sorted(result.messages_by_topic_kind.items())),
        "truth": dict(sorted(result.truth_counts.items())),
    }


def print_summary(result: object) -> None:
    from store_edge.sim.simulator import SimulationResult

    assert isinstance(result, SimulationResult)
    plan = result.plan
    names = {p.sku: p.name for p in plan.store.products}
    print(
        f"Simulated {plan.scenario.name!r} in store {plan.store.store_id!r}: {len(plan.shoppers)} shoppers, "
        f"{len(plan.visits)} visits, {result.duration_s:g} s (seed {plan.scenario.seed})"
    )
    print()
    print(f"{'visit':<16} {'shoppers':<18} {'in':>7} {'out':>7}  actions                          receipt")
    for v in plan.visits:
        acts = Counter(a.kind for a in plan.actions if a.visit_id == v.visit_id)
        act_text = ", ".join(f"{n} {k}" for k, n in sorted(acts.items())) or "-"
        lines = plan.receipts[v.visit_id]
        receipt = "; ".join(f"{q} x {names[s]}" for s, q in sorted(lines.items()) if q) or "(nothing)"
        print(
            f"{v.visit_id:<16} {','.join(v.shopper_ids):<18} {v.scan_s:>6.1f}s {v.exit_s:>6.1f}s  "
            f"{act_text:<32} {receipt}"
        )
    kinds = Counter(a.kind for a in plan.actions)
    print()
    print(
        "actions: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f" ({sum(a.misplaced for a in plan.actions)} returned to the wrong place)"
    )
    total = sum(result.messages_by_topic_kind.values())
    print(
        f"messages: {total} sensor messages "
        + "("
        + ", ".join(f"{n} {k.removeprefix('cl.v1.')}" for k, n in sorted(result.messages_by_topic_kind.items()))
        + f"), {sum(result.truth_counts.values())} truth records"
    )
    print(f"wrote {result.out} ({result.out.stat().st_size / 1e6:.2f} MB)")


def _cmd_validate(args: argparse.Namespace) -> int:
    from store_edge.layout.loader import load_store, read_yaml
    from store_edge.sim.scenario import load_scenario

    status = 0
    for f in args.files:
        try:
            data = read_yaml(f)
            if isinstance(data, dict) and "store_id" not in data and "store" in data:
                sc = load_scenario(f)
                print(f"{f}: scenario {sc.name!r} OK ({len(sc.shoppers)} shoppers)")
            else:
                st = load_store(f)
                print(
                    f"{f}: store {st.store_id!r} OK ({len(st.gondolas)} gondolas, {st.plate_count} plates, "
                    f"{len(st.products)} products, {len(st.cameras)} cameras)"
                )
        except ConfigError as e:
            print(e, file=sys.stderr)
            status = 2
    return status


def _cmd_schemas(args: argparse.Namespace) -> int:
    from store_edge.protocol.schemas import write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from store_edge.layout.loader import load_store
    from store_edge.recording.contents import store_from_recording
    from store_edge.viz import plot_action_traces, plot_floor

    store = load_store(args.store) if args.store else store_from_recording(args.recording)
    out = Path(args.out)
    print(plot_floor(args.recording, store, out))
    for path in plot_action_traces(args.recording, store, out, limit=args.actions):
        print(path)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from store_edge.evaluation import evaluate
    from store_edge.layout.loader import load_store

    store = load_store(args.store) if args.store else None
    ev = evaluate(args.recording, store, explain=args.explain)
    if args.json:
        print(json.dumps(ev.as_json(), indent=2))
    else:
        j = ev.as_json()
        print(f"{ev.recording}: {ev.visits} visits, {ev.items.actual} item units carried out")
        print(
            f"  items      precision {j['items']['precision']:.3f}  recall {j['items']['recall']:.3f}  "
            f"F1 {j['items']['f1']:.3f}"
        )
        print(f"  receipts   exact {j['receipts']['exact_match']:.1%}")
        print(
            f"  review     {j['review_rate']:.1%} of units in {j['review_tickets']} tickets; after review F1 "
            f"{j['after_review']['f1']:.3f}"
        )
        print(
            f"  speed      {j['speed']['samples_per_s']:,} plate samples/s, {j['speed']['realtime_factor']}x real time"
        )
    if args.explain:
        print("\n".join(ev.explain_lines) or "nothing wrong or reviewed")
    return 0


def _stop_on_signals() -> threading.Event:
    """Set by SIGTERM or Ctrl-C: long-running commands stop cleanly on either."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _secret(path: str | None, env: str) -> str | None:
    """A secret from a file (first line) or the environment, never from the command line (ps shows it)."""
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as e:
            raise SystemExit(f"store-edge: cannot read the key file {path}: {e.strerror}") from e
    return os.environ.get(env) or None


def _cmd_demo(args: argparse.Namespace) -> int:
    from store_edge.demo import DemoConfig, DemoError, run_demo

    cfg = DemoConfig(
        store=Path(args.store),
        recording=Path(args.recording),
        out_dir=Path(args.out),
        speed=args.speed,
        once=args.once,
        broker_url=os.environ.get("MQTT_URL") or None,
        database_url=os.environ.get("DATABASE_URL") or None,
        progress=not args.quiet,
    )
    for path in (cfg.store, cfg.recording):
        if not path.is_file():
            print(f"store-edge demo: {path} not found (run from the repository root, or pass --store/--recording)")
            return 2
    stop = _stop_on_signals()
    try:
        run_demo(cfg, stop)
    except DemoError as e:
        print(f"store-edge demo: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import logging

    from store_edge.layout.loader import load_store
    from store_edge.live.mqtt import EmbeddedBroker, parse_broker_url
    from store_edge.live.worker import RunningWorker, WorkerConfig, tune_garbage_collection

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = load_store(args.store)
    # a fresh machine has no broker: without --broker, one runs in this process
    embedded = None if args.broker else EmbeddedBroker(port=1883).start()
    address = embedded.address if embedded else parse_broker_url(args.broker, os.environ)
    if embedded:
        print(f"no --broker given: embedded MQTT broker on {address.url}", file=sys.stderr)
    stop = _stop_on_signals()
    config = WorkerConfig(
        state_dir=Path(args.state_dir),
        lag_s=args.lag,
        jitter_s=args.jitter,
        worker_id=args.worker_id,
        snapshot_every_s=args.snapshot_every,
        merge=args.merge,
        input_process=args.input_process,
    )
    print(f"store-edge run: store {store.store_id} on {address.url}; state in {args.state_dir}", file=sys.stderr)
    cloud_key = _secret(args.cloud_key_file, "CLOUD_API_KEY")
    running = RunningWorker(store, address, args.cloud, config, args.health_port, cloud_key).start()
    tune_garbage_collection()
    try:
        while not stop.wait(1.0):
            if running.failed:
                return 1  # the input process has gone: exit so that the service manager restarts us
    finally:
        running.stop()
        if embedded:
            embedded.stop()
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from store_edge.live.mqtt import parse_broker_url
    from store_edge.live.replay import Recorder

    stop = _stop_on_signals()
    rec = Recorder(parse_broker_url(args.broker, os.environ), args.store, args.out).start()
    print(f"recording cl/v1/{args.store}/# to {args.out}; Ctrl-C to stop", file=sys.stderr)
    stop.wait(args.seconds)
    n = rec.stop()
    print(f"{n} messages written to {args.out}", file=sys.stderr)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from store_edge.live.mqtt import parse_broker_url
    from store_edge.live.replay import replay

    speed = None if args.as_fast_as_possible else args.speed
    n = replay(args.recording, parse_broker_url(args.broker, os.environ), speed=speed, progress=not args.quiet)
    print(f"{n} messages published to {args.broker}", file=sys.stderr)
    return 0


def _vision_pipeline(args: argparse.Namespace) -> object:
    from store_edge.layout.loader import load_store
    from store_edge.vision.detector import DEFAULT_WEIGHTS, DetectorConfig, VisionPipeline

    config = DetectorConfig(
        weights=Path(args.weights) if args.weights else DEFAULT_WEIGHTS,
        classes=tuple(args.classes),
        imgsz=args.imgsz,
        conf=args.conf,
        device=args.device,
    )
    return VisionPipeline(load_store(args.store), config, cameras=args.cameras, store_stage=args.stage == "all")


def _vision_store_stage(args: argparse.Namespace) -> int:
    """`store-edge vision --stage store`: camera/+/tracks to tracks (no detector, no frames)."""
    from store_edge.layout.loader import load_store
    from store_edge.live.mqtt import parse_broker_url
    from store_edge.vision.store_stage import StoreStage
    from store_edge.vision.worker import LiveStoreWorker

    stage = StoreStage(load_store(args.store))
    store_id = stage.store.store_id
    device_id = args.worker_id or f"tracker-{store_id}"
    settle = {} if args.settle_s is None else {"settle_s": args.settle_s}
    try:
        worker = LiveStoreWorker(stage, parse_broker_url(args.broker, os.environ), device_id, args.cameras, **settle)
    except ValueError as e:
        print(f"store-edge vision: {e}", file=sys.stderr)
        return 2
    stop = _stop_on_signals()
    worker.start()
    topics = "camera/+/tracks" if args.cameras is None else ", ".join(f"camera/{c}/tracks" for c in args.cameras)
    print(f"store-edge vision: store {store_id}, store stage: {topics} on {args.broker}, to tracks", file=sys.stderr)
    try:
        stop.wait()
    finally:
        worker.stop()
    return 0


def _cmd_vision(args: argparse.Namespace) -> int:
    import logging
    import time

    from store_edge.live.mqtt import parse_broker_url
    from store_edge.protocol.codec import encode, schema_name
    from store_edge.protocol.topics import topic_for
    from store_edge.recording.mcap_io import RecordingWriter
    from store_edge.vision.detector import VisionPipeline, VisionSetupError
    from store_edge.vision.worker import (
        LiveVisionWorker,
        VisionOutput,
        frame_topics,
        frames_from_video,
        run_offline,
        vision_recording,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sources = sum(x is not None for x in (args.video, args.recording))
    if sources == 0 and not args.broker:
        print("store-edge vision: give --video FILE, --recording FILE.mcap or --broker URL", file=sys.stderr)
        return 2
    if sources and (args.stage != "all" or args.cameras):
        print("store-edge vision: --stage and --cameras are for the live worker (--broker alone)", file=sys.stderr)
        return 2
    if args.stage == "store":
        return _vision_store_stage(args)
    try:
        pipeline = _vision_pipeline(args)
    except (VisionSetupError, ValueError) as e:
        print(f"store-edge vision: {e}", file=sys.stderr)
        return 2
    assert isinstance(pipeline, VisionPipeline)
    store_id = pipeline.store.store_id
    # several camera-stage workers on one broker need client ids of their own: by default the first camera's
    device_id = args.worker_id or (f"vision-{store_id}-{args.cameras[0]}" if args.cameras else f"vision-{store_id}")
    if args.recording:
        if not args.out:
            print("store-edge vision: --recording needs --out FILE.mcap", file=sys.stderr)
            return 2
        n = vision_recording(pipeline, args.recording, args.out, device_id, progress=not args.quiet)
        print(f"{n} vision messages written to {args.out}", file=sys.stderr)
        return 0
    if args.video:
        if not args.camera:
            print("store-edge vision: --video needs --camera ID (whose calibration applies)", file=sys.stderr)
            return 2
        start = args.start_ns if args.start_ns is not None else time.time_ns()
        frames = frames_from_video(args.video, args.camera, start, args.fps)
        msgs = run_offline(pipeline, VisionOutput(store_id, device_id), frames)
        n = 0
        if args.out:
            with RecordingWriter(args.out) as w:
                for msg in msgs:
                    ts = msg.header.ts_ns
                    w.write(topic_for(store_id, msg), schema_name(type(msg)), type(msg), encode(msg), ts, ts, n)
                    n += 1
        elif args.broker:
            from store_edge.live.mqtt import MqttLink

            link = MqttLink(parse_broker_url(args.broker, os.environ), device_id).start()
            try:
                for msg in msgs:
                    link.publish(topic_for(store_id, msg), encode(msg)).wait_for_publish(timeout=10)
                    n += 1
            finally:
                link.stop()
        else:
            for msg in msgs:
                print(msg.model_dump_json())
                n += 1
        print(f"{n} vision messages from {args.video}", file=sys.stderr)
        return 0
    stop = _stop_on_signals()
    settle = {} if args.settle_s is None else {"settle_s": args.settle_s}
    worker = LiveVisionWorker(pipeline, parse_broker_url(args.broker, os.environ), device_id, **settle).start()
    topics = ", ".join(t.split("/", 3)[3] for t in frame_topics(pipeline))
    stage = "" if args.stage == "all" else "camera stage only (camera/CAM/tracks, no store tracks), "
    print(f"store-edge vision: store {store_id}, {stage}{topics} on {args.broker}", file=sys.stderr)
    try:
        stop.wait()
    finally:
        worker.stop()
    return 0


def _cmd_camera(args: argparse.Namespace) -> int:
    from store_edge.live.mqtt import parse_broker_url
    from store_edge.vision.worker import publish_camera, publish_recorded_frames

    broker = parse_broker_url(args.broker, os.environ)
    if args.source.endswith(".mcap"):
        n = publish_recorded_frames(args.source, args.store, broker, args.camera, args.fps, args.max_frames)
    else:
        if not args.camera:
            print("store-edge camera: --camera ID is needed for a video source", file=sys.stderr)
            return 2
        n = publish_camera(args.source, args.camera, args.store, broker, args.fps, args.loop, args.max_frames)
    print(f"{n} frames published", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="store-edge", description="Cashierless store edge: simulate, fuse, record.")
    p.add_argument("--version", action="version", version=f"store-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate shoppers in a store and write an MCAP recording")
    sim.add_argument("--store", required=True, help="store layout YAML")
    sim.add_argument("--scenario", help="scenario YAML (otherwise a random scenario is generated)")
    sim.add_argument("--shoppers", type=int, help="random scenario: number of shoppers")
    sim.add_argument("--minutes", type=float, help="random scenario: length in minutes")
    sim.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    sim.add_argument("--out", required=True, help="output .mcap file")
    sim.add_argument("--frames", action="store_true", help="also render top-down camera frames (needs OpenCV)")
    sim.add_argument("--frame-fps", type=float, help="frame rate of rendered frames (default: each camera's fps)")
    sim.add_argument("--json", action="store_true", help="print the summary as JSON")
    sim.add_argument("--quiet", action="store_true", help="no progress bars")
    sim.set_defaults(func=_cmd_simulate)

    plot = sub.add_parser("plot", help="draw a recording: floor map with paths, weight traces of actions")
    plot.add_argument("recording")
    plot.add_argument("--store", help="store layout (default: the copy inside the recording)")
    plot.add_argument("--out", required=True, help="folder for the PNG files")
    plot.add_argument("--actions", type=int, default=20, help="draw at most this many actions")
    plot.set_defaults(func=_cmd_plot)

    ev = sub.add_parser("eval", help="run the fusion engine on a recording and score it against its truth")
    ev.add_argument("recording")
    ev.add_argument("--store", help="store layout (default: the copy inside the recording)")
    ev.add_argument("--json", action="store_true", help="one JSON object with every metric")
    ev.add_argument("--explain", action="store_true", help="why each wrong or reviewed line came out as it did")
    ev.set_defaults(func=_cmd_eval)

    val = sub.add_parser("validate", help="check store and scenario files")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=_cmd_validate)

    demo = sub.add_parser(
        "demo",
        help="the whole store on this machine: broker, cloud API, edge worker, gate, a replayed recording",
    )
    demo.add_argument("--store", default="sample_data/stores/demo.yaml", help="store layout YAML")
    demo.add_argument(
        "--recording",
        default="sample_data/recordings/demo-random-8x4min-seed1.mcap",
        help="a recording made by `store-edge simulate` (with its ground truth); one with camera frames "
        "(`simulate --frames`, e.g. sample_data/recordings/demo-frames-3x1min-seed9.mcap) also runs the vision "
        "worker on them, in place of the recorded tracks",
    )
    demo.add_argument("--out", default="out/demo", help="folder for the databases, logs, keys and the result")
    demo.add_argument("--speed", type=float, default=10.0, help="times faster than real time (default 10)")
    demo.add_argument(
        "--once",
        action="store_true",
        help="exit when every receipt is in, or with vision when the edge worker has settled (default: keep running)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="run the fusion engine live on a store's MQTT topics")
    run.add_argument("--store", required=True, help="store layout YAML")
    run.add_argument("--broker", help="mqtt://HOST[:PORT] (default: an embedded broker on 127.0.0.1:1883)")
    run.add_argument("--cloud", help="cloud API base URL that receives finished carts (default: keep them queued)")
    run.add_argument(
        "--cloud-key-file", help="file holding this edge's device key for the cloud (default: $CLOUD_API_KEY)"
    )
    run.add_argument("--state-dir", default="edge-state", help="journal and outbox (SQLite) live here")
    run.add_argument("--lag", type=float, default=0.5, help="seconds to wait for a device gone quiet (default 0.5)")
    run.add_argument(
        "--jitter", type=float, default=0.1, help="seconds a device's message may trail its peers' (default 0.1)"
    )
    run.add_argument(
        "--merge",
        choices=("shelf", "total"),
        default="shelf",
        help="shelf: each shelf's devices merged with the tracker and gates only (default, lower latency); "
        "total: all devices in one timestamp order",
    )
    run.add_argument(
        "--input-process",
        action="store_true",
        help="receive, journal and acknowledge in a second process (more throughput on two or more cores)",
    )
    run.add_argument("--health-port", type=int, default=9108, help="/healthz and /metrics on 127.0.0.1")
    run.add_argument(
        "--snapshot-every", type=float, default=300.0, help="seconds between state snapshots (default 300)"
    )
    run.add_argument("--worker-id", help="MQTT client and device id (default edge-STORE); one per running worker")
    run.set_defaults(func=_cmd_run)
    rec = sub.add_parser("record", help="write everything on a store's topics to MCAP")
    rec.add_argument("--broker", required=True, help="mqtt://HOST[:PORT]")
    rec.add_argument("--store", required=True, help="store id (the topic tree cl/v1/STORE/#)")
    rec.add_argument("--out", required=True, help="MCAP file to write")
    rec.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    rec.set_defaults(func=_cmd_record)
    rep = sub.add_parser("replay", help="publish a recording to a broker with its original timing")
    rep.add_argument("recording")
    rep.add_argument("--broker", required=True, help="mqtt://HOST[:PORT]")
    speed = rep.add_mutually_exclusive_group()
    speed.add_argument("--speed", type=float, default=1.0, help="time scale (2: twice as fast)")
    speed.add_argument("--as-fast-as-possible", action="store_true")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=_cmd_replay)
    sch = sub.add_parser("schemas", help="write the JSON Schemas of every message to a folder")
    sch.add_argument("--out", default="docs/schemas")
    sch.set_defaults(func=_cmd_schemas)
    vis = sub.add_parser(
        "vision", help="camera frames to shopper tracks: person detector, ByteTrack, floor, store tracker"
    )
    vis.add_argument("--store", required=True, help="store layout YAML (camera calibrations)")
    vis.add_argument("--video", help="a video file, RTSP URL or USB camera index, for --camera")
    vis.add_argument("--camera", help="the camera the --video shows")
    vis.add_argument("--recording", help="a recording with camera frames: writes a copy with vision's tracks to --out")
    vis.add_argument("--broker", help="mqtt://HOST[:PORT]: live on camera/+/frame, or where --video tracks go")
    vis.add_argument("--out", help="MCAP file for the tracks (with --video or --recording)")
    vis.add_argument("--weights", help="ultralytics weights file (default models/person-detector-320.pt)")
    vis.add_argument("--classes", type=int, nargs="+", default=[0], help="the model's person class ids (default 0)")
    vis.add_argument("--imgsz", type=int, default=320, help="detector input size (default 320)")
    vis.add_argument("--conf", type=float, default=0.1, help="lowest detection score kept (default 0.1)")
    vis.add_argument("--device", help="cpu, or a GPU index such as 0 (default: a GPU when there is one)")
    vis.add_argument("--fps", type=float, help="--video: frame rate (default: the file's)")
    vis.add_argument("--start-ns", type=int, help="--video: time of the first frame (default: now)")
    vis.add_argument(
        "--stage",
        choices=["all", "cameras", "store"],
        default="all",
        help="live: all (default: frames to camera tracks and store tracks in one process), cameras (frames "
        "to camera/CAM/tracks only), store (camera/+/tracks to tracks only; no detector)",
    )
    vis.add_argument(
        "--cameras",
        nargs="+",
        metavar="CAM",
        help="live: only these cameras' frames (or with --stage store their tracks); default every camera",
    )
    vis.add_argument(
        "--settle-s",
        type=float,
        help="live: how long an instant waits for a missing camera after the last one came "
        "(default 0.1 s; --stage store 0.2 s)",
    )
    vis.add_argument(
        "--worker-id",
        help="device id and MQTT client id (default vision-STORE, vision-STORE-CAM with --cameras, "
        "tracker-STORE with --stage store)",
    )
    vis.add_argument("--quiet", action="store_true", help="no progress bar")
    vis.set_defaults(func=_cmd_vision)
    cam = sub.add_parser("camera", help="publish camera frames to MQTT from a video, RTSP URL, USB camera or recording")
    cam.add_argument("source", help="video file, rtsp:// URL, USB camera index, or a recording (.mcap) with frames")
    cam.add_argument("--store", required=True, help="store id (the topic tree cl/v1/STORE/...)")
    cam.add_argument("--broker", required=True, help="mqtt://HOST[:PORT]")
    cam.add_argument("--camera", help="camera id (a recording: only this camera; default all)")
    cam.add_argument("--fps", type=float, help="frames per second (default: the source's own)")
    cam.add_argument("--loop", action="store_true", help="start the video again at its end")
    cam.add_argument("--max-frames", type=int, help="stop after this many frames")
    cam.set_defaults(func=_cmd_camera)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from store_edge.live.mqtt import BrokerConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except BrokerConfigError as e:  # a bad broker URL or setting: say what, no traceback
        print(f"store-edge: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
