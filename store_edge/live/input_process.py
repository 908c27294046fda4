"""The worker's input side in a process of its own (`store-edge run --input-process`).

In one process, paho's network thread, the journal thread and the engine share one interpreter lock:
at a large store's rate (thousands of messages a second) the input side alone took about 45% of the
worker's time (py-spy), time the engine could not have. Here a child process holds the broker session
(the worker's client id, persistent, manual QoS 1 acks, the Last Will), appends each batch of
messages to the journal, acknowledges them, and then sends the parent the batch with its journal row
ids, which the parent hands to the worker thread. The guarantees do not change: a message is
acknowledged only once journaled, and a restart replays the journal after the last snapshot. (The
parent once read the rows back from the journal instead: at 5,000 messages a second that reading took
a sixth of the engine process's time and held its interpreter lock; a pipe carries them for less.)
The parent publishes its outputs on a connection of its own.

Either process ending ends the other: the child stops when the parent goes, and the parent's reader
thread, finding the child gone, stops the worker (the service manager restarts it; the broker delivers
again whatever was not acknowledged).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from store_edge.live.mqtt import BrokerAddress, MqttLink
from store_edge.live.state import Journal

log = logging.getLogger(__name__)
SUBSCRIBED = "subscribed"
"""Sent by the child once the broker has confirmed its subscriptions (after every connect)."""
BATCH = 2000
"""Most messages journaled in one transaction."""


def run_input(
    address: BrokerAddress,
    client_id: str,
    subscriptions: tuple[str, ...],
    will: tuple[str, bytes],
    journal_path: Path,
    to_parent: Connection,
) -> None:
    """The child process: broker session -> journal -> acks -> the rows (with their ids) to the parent."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    inbox: deque[tuple[str, bytes, int]] = deque()  # appended by paho's thread, taken by this one
    link = MqttLink(
        address,
        client_id=client_id,
        on_message=lambda topic, payload, mid: inbox.append((topic, payload, mid)),
        subscriptions=subscriptions,
        will=will,
        persistent_session=True,
        manual_ack=True,
    )
    journal = Journal(journal_path)
    parent = os.getppid()
    link.start(wait_s=0)
    told_subscribed = False
    try:
        while os.getppid() == parent:
            if link.subscribed.is_set() != told_subscribed:
                told_subscribed = link.subscribed.is_set()
                if told_subscribed:
                    to_parent.send(SUBSCRIBED)
            if not inbox:
                time.sleep(0.002)  # a short nap rather than a wake-up per message: batches form by themselves
                continue
            batch = [inbox.popleft() for _ in range(min(len(inbox), BATCH))]
            now = time.time_ns()
            ids = journal.append([(now, topic, payload) for topic, payload, _ in batch])
            for _, _, mid in batch:
                link.ack(mid)
            to_parent.send([(row_id, topic, payload) for row_id, (topic, payload, _) in zip(ids, batch, strict=True)])
    except (BrokenPipeError, EOFError, OSError):
        pass  # the parent is gone: what was not acknowledged the broker delivers again
    finally:
        link.stop()


PIPE_BYTES = 1 << 20
"""The pipe's buffer (Linux: 64 KiB by default, 1 MiB the most an unprivileged process may ask): a batch of
2,000 weight messages is about 3 MB, read in 64 KiB pieces a system call and a wake-up each."""


def _widen_pipe(fd: int) -> None:
    # not Linux, or a lower limit set: the default works, with more calls
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class InputProcess:
    """Starts the child and, in the parent, hands the journaled rows it sends to the worker in batches."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        subscriptions: tuple[str, ...],
        will: tuple[str, bytes],
        journal_path: Path,
        work: queue.Queue[list[tuple[int, str, bytes]]],
    ) -> None:
        ctx = mp.get_context("spawn")  # the parent runs threads: no fork
        self._from_child, self._to_parent = ctx.Pipe(duplex=False)
        _widen_pipe(self._from_child.fileno())
        self.process = ctx.Process(
            target=run_input,
            args=(address, client_id, subscriptions, will, journal_path, self._to_parent),
            name="edge-input",
            daemon=True,
        )
        self.work = work
        self.subscribed = threading.Event()
        self.ended = threading.Event()
        """Set when the child has gone while the parent still ran."""
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="edge-input-reader", daemon=True)

    def start(self, wait_s: float = 10.0) -> None:
        """After the worker's recovery (it has read the journal so far; the child appends after that)."""
        self.process.start()
        self._to_parent.close()  # the child's end: with this copy closed, the child's exit reads as EOF here
        self._reader.start()
        if wait_s and not self.subscribed.wait(wait_s):
            log.warning("the input process has no confirmed subscription yet; still trying")

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._from_child.poll(0.05):
                    if not self.process.is_alive():
                        raise EOFError
                    continue
                rows: list[tuple[int, str, bytes]] = []
                while self._from_child.poll():  # everything already sent, as one batch for the worker
                    note = self._from_child.recv()
                    if note == SUBSCRIBED:
                        self.subscribed.set()
                    else:
                        rows += note
            except (EOFError, OSError):
                if not self._stop.is_set():
                    log.error("the input process has ended (exit code %s)", self.process.exitcode)
                    self.ended.set()
                return
            if rows:
                self.work.put(rows)

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.join(10)
        self._reader.join(5)
