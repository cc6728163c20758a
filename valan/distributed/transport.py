"""Inference calls between an actor and the learner on one node, over a Unix socket instead of Ray actor calls.

A Ray actor call costs about 0.9 ms of the caller's CPU per round trip whatever its payload, and as much again
in the callee's RPC threads (docs/speed.md). An actor makes one call per step of its ``K`` environments, so on a
2-core machine Ray's share was a fifth of all the CPU a training run used. Here an actor on the learner's node
sends its observations as raw array bytes over a Unix stream socket instead. The learner answers each connection
on a thread of its own that calls the same ``infer`` methods Ray's RPC threads do, so batching, unroll assembly,
backpressure and the "training is over" answer are unchanged. Ray still places and restarts the processes, and
carries every other call; actors on other nodes of a cluster keep using Ray calls.

Frames: one type byte, a 4-byte little-endian payload length, the payload.

- ``H`` (actor -> learner, once per connection): JSON ``{"token", "actor_id", "incarnation", "evaluation"}``.
- ``L`` (actor -> learner, before the first request and whenever a shape or dtype changes): JSON
  ``[[key, dtype, shape], ...]``, the layout of the observations that follow.
- ``R`` (actor -> learner): the observation arrays in layout order, then ``reward`` float32 ``(K,)``, ``done``
  bool ``(K,)`` and ``first`` bool ``(K,)``, each C-ordered.
- The answer: ``A`` with the ``K`` actions as int64, ``F`` (training is over, no payload) or ``E`` with the
  error's message (UTF-8); the actor raises it.

No payload is unpickled: a frame only ever becomes numbers and JSON. On Linux the socket has an abstract address
(no file; it goes away with the learner's process, even a killed one); elsewhere it lives in a fresh directory
that only the user can enter (``tempfile.mkdtemp``). Either way the hello must carry the learner's random token,
which actors get from the learner through Ray: a process that did not get it is hung up on.

A learner that dies closes its end, so the actor's next read fails with :class:`LearnerLost`, the same outcome as
Ray's "actor died" error on the Ray path; an actor that dies closes its end, and its connection thread ends.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import threading
from typing import Any, Callable

import numpy as np

Observation = dict[str, np.ndarray]
InferFn = Callable[[int, str, Observation, np.ndarray, np.ndarray, np.ndarray, bool], "np.ndarray | None"]

_HEADER = struct.Struct("<cI")  # frame type, payload length in bytes
SOCKET_NAME = "inference.sock"
AVAILABLE = hasattr(socket, "AF_UNIX")  # not on every Windows build; there actors use Ray calls


class LearnerLost(ConnectionError):
    """The learner's end of the socket closed (it died or shut down)."""


def _send(sock: socket.socket, kind: bytes, payload: bytes | bytearray = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("connection closed")
        got += n
    return buffer


def _recv(sock: socket.socket) -> tuple[bytes, bytearray]:
    kind, size = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return kind, _recv_exactly(sock, size) if size else bytearray()


def _layout_of(obs: Observation) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(key, np.asarray(value).dtype.str, tuple(np.shape(value))) for key, value in obs.items()]


def _decode(layout: list[tuple[str, str, tuple[int, ...]]], k: int, payload: bytearray
            ) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray]:
    """Observations, reward, done and first of an ``R`` payload, as arrays over (not copies of) ``payload``."""
    fields = layout + [("reward", "<f4", (k,)), ("done", "|b1", (k,)), ("first", "|b1", (k,))]
    arrays, offset = {}, 0
    for key, dtype, shape in fields:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        arrays[key] = np.frombuffer(payload, dtype, count, offset).reshape(shape)
        offset += count * dtype.itemsize
    if offset != len(payload):
        raise ValueError(f"request of {len(payload)} bytes, its layout says {offset}")
    return arrays, arrays.pop("reward"), arrays.pop("done"), arrays.pop("first")


def _slots(layout: list[tuple[str, str, tuple[int, ...]]]) -> int:
    """``K``: every observation array is ``(K, ...)``."""
    if not layout or not layout[0][2]:
        raise ValueError("observations must be arrays of shape (K, ...)")
    return int(layout[0][2][0])


class InferenceSocketServer:
    """Listens on a Unix socket (:attr:`path`: an abstract address on Linux, else in a private temporary
    directory) and answers each connection that presents :attr:`token` on its own thread with ``infer(actor_id,
    incarnation, obs, reward, done, first, evaluation)`` (the actions, or ``None`` when training is over)."""

    def __init__(self, infer: InferFn):
        self._infer = infer
        self.token = secrets.token_hex(16)
        if sys.platform.startswith("linux"):  # abstract address: no file to leave behind
            self._directory, self.path = None, f"\0valan-inference-{secrets.token_hex(8)}"
        else:
            self._directory = tempfile.mkdtemp(prefix="valan-inference-")
            self.path = os.path.join(self._directory, SOCKET_NAME)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.requests = 0  # requests answered so far
        self.accepted = 0  # connections accepted so far
        threading.Thread(target=self._accept_loop, name="inference-socket", daemon=True).start()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        """Stop accepting, close every connection (their actors see :class:`LearnerLost`), remove the socket."""
        with self._lock:
            self._closed = True
            connections, self._connections = list(self._connections), set()
        for sock in [self._listener, *connections]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                self._connections.add(sock)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(sock,), name="inference-connection", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            kind, payload = _recv(sock)
            if kind != b"H":
                raise ValueError(f"expected a hello frame, got {kind!r}")
            hello = json.loads(payload)
            if not hmac.compare_digest(str(hello["token"]), self.token):
                return  # not one of this learner's actors
            actor_id, incarnation, evaluation = int(hello["actor_id"]), str(hello["incarnation"]), bool(hello["evaluation"])
            layout: list[tuple[str, str, tuple[int, ...]]] | None = None
            k = 0
            while True:
                kind, payload = _recv(sock)
                if kind == b"L":
                    layout = [(key, dtype, tuple(shape)) for key, dtype, shape in json.loads(payload)]
                    k = _slots(layout)
                    continue
                if kind != b"R" or layout is None:
                    raise ValueError(f"unexpected frame {kind!r}")
                try:
                    obs, reward, done, first = _decode(layout, k, payload)
                    actions = self._infer(actor_id, incarnation, obs, reward, done, first, evaluation)
                except Exception as e:  # the actor raises it; this connection is done
                    _send(sock, b"E", f"{type(e).__name__}: {e}".encode())
                    return
                with self._lock:
                    self.requests += 1
                if actions is None:
                    _send(sock, b"F")
                else:
                    _send(sock, b"A", np.ascontiguousarray(actions, dtype="<i8").tobytes())
        except (EOFError, OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # the actor died or closed its end (or spoke nonsense): nothing to answer
        finally:
            with self._lock:
                self._connections.discard(sock)
            sock.close()


class InferenceSocketClient:
    """An actor's end of one connection: :meth:`infer` sends one request and waits for its answer."""

    def __init__(self, path: str, token: str, actor_id: int, incarnation: str, evaluation: bool = False):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
            _send(self._sock, b"H", json.dumps({"token": token, "actor_id": int(actor_id), "incarnation": incarnation,
                                                "evaluation": bool(evaluation)}).encode())
        except OSError:
            self._sock.close()
            raise
        self._layout: list[tuple[str, str, tuple[int, ...]]] | None = None

    def infer(self, obs: Observation, reward: np.ndarray | None, done: np.ndarray | None, first: np.ndarray
              ) -> np.ndarray | None:
        """The actions ``(K,)`` int64 for these observations, or ``None`` once training is over; raises
        :class:`LearnerLost` when the learner is gone and ``RuntimeError`` with the learner's error."""
        obs = {key: np.ascontiguousarray(value) for key, value in obs.items()}
        k = len(first)
        reward = np.zeros(k, "<f4") if reward is None else np.ascontiguousarray(reward, "<f4")
        done = np.zeros(k, bool) if done is None else np.ascontiguousarray(done, bool)
        layout = _layout_of(obs)
        try:
            if layout != self._layout:
                _send(self._sock, b"L", json.dumps(layout).encode())
                self._layout = layout
            _send(self._sock, b"R", b"".join([*obs.values(), reward, done, np.ascontiguousarray(first, bool)]))
            kind, payload = _recv(self._sock)
        except (EOFError, OSError) as e:
            raise LearnerLost(f"learner connection lost: {e}") from e
        if kind == b"A":
            return np.frombuffer(payload, "<i8").copy()
        if kind == b"F":
            return None
        raise RuntimeError(payload.decode(errors="replace"))

    def close(self) -> None:
        self._sock.close()


def connect(address: dict[str, Any] | None, node_id: str | None, actor_id: int, incarnation: str,
            evaluation: bool = False) -> InferenceSocketClient | None:
    """A socket client when ``address`` (the learner's ``{"node_id", "path", "token"}``, or ``None``) is on
    ``node_id`` and answers; otherwise ``None``, and the caller uses Ray calls."""
    if address is None or node_id is None or address["node_id"] != node_id:
        return None
    try:
        return InferenceSocketClient(address["path"], address["token"], actor_id, incarnation, evaluation)
    except OSError:
        return None
