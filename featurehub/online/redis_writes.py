"""The Redis store's write path: newest-wins batches, framed for the wire by Arrow.

A batch of keys is written one of two ways, both atomic on the server:
- MSETNX, while every key of the write so far was new: it sets all the batch's keys only when
  none exists, so it never replaces a row. A first materialization, or new entities, cost
  Redis about a plain MSET instead of a script (~1 against ~4 us of server CPU per row).
- Otherwise, or when MSETNX finds a key, `WRITE_SCRIPT`: it reads the stored headers with one
  MGET and MSETs the rows that are not older. Once one MSETNX fails, the rest of the write goes
  to the script directly (the view already holds rows).

Why the framing: redis-py turns each of a batch's 4000 arguments into a RESP bulk string in
Python (~0.5 us each), client CPU that competes with Redis for the same cores. Here Arrow frames
all keys and all rows of a chunk in a few vectorized calls, so any run of them is one slice of
a buffer, and a batch is sent as three slices on a redis-py connection. Packing the next chunk
overlaps with Redis running the script of the previous one, on two connections.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis
import redis.exceptions as rex

from featurehub.online.codec import RowLayout

BATCH_KEYS = 2000  # keys per script call; at most 3999: Lua's unpack() stops at 8000
PACK_ROWS = 20_000  # rows packed at a time, so packing overlaps with sending
WRITE_CONNECTIONS = 2

# KEYS: entity keys; ARGV: packed rows whose first 20 bytes are <qqI event_us, created_us,
# layout. A row is written unless the stored row has the same layout and a greater (event,
# created); equal timestamps: the incoming row wins. A stored value too short to be a row is
# replaced. Lua numbers are doubles, exact only up to 2^53, so each int64 is compared as its
# signed high and unsigned low 32-bit halves. Returns the number of rows written.
WRITE_SCRIPT = """
local function wins(new, old)
  if #old < 20 then return true end
  local nel, neh, ncl, nch, nlay = struct.unpack('<I4i4I4i4I4', new)
  local oel, oeh, ocl, och, olay = struct.unpack('<I4i4I4i4I4', old)
  if nlay ~= olay then return true end
  if neh ~= oeh then return neh > oeh end
  if nel ~= oel then return nel > oel end
  if nch ~= och then return nch > och end
  return ncl >= ocl
end
local stored = redis.call('MGET', unpack(KEYS))
local pending, n = {}, 0
for i = 1, #KEYS do
  local old = stored[i]
  if not old or wins(ARGV[i], old) then
    pending[n + 1] = KEYS[i]
    pending[n + 2] = ARGV[i]
    n = n + 2
  end
end
if n > 0 then redis.call('MSET', unpack(pending, 1, n)) end
return n / 2
"""
SCRIPT_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest().encode()

_EMPTY = pa.scalar(b"", pa.binary())
_CRLF = pa.scalar(b"\r\n", pa.binary())
_DOLLAR = pa.scalar(b"$", pa.binary())


class _Frames:
    """Byte strings as consecutive RESP bulk strings (`$<length>\r\n<bytes>\r\n`), so the
    arguments of any run of them are one slice of one buffer."""

    def __init__(self, *columns: pa.BinaryArray) -> None:
        """Frames of `columns` interleaved: a[0], b[0], a[1], b[1]..., one item per row."""
        pieces = [piece for column in columns for piece in _frame_pieces(column)]
        framed = pc.binary_join_element_wise(*pieces, _EMPTY)
        self._array = framed  # keeps the buffers alive
        self._offsets = np.frombuffer(framed.buffers()[1], np.int32, len(framed) + 1)
        self._data = memoryview(framed.buffers()[2] or b"")

    def span(self, first: int, last: int) -> memoryview:
        """The framed items of rows first..last-1."""
        return self._data[self._offsets[first] : self._offsets[last]]


def _frame_pieces(values: pa.BinaryArray) -> list[pa.Array | pa.Scalar]:
    """What `binary_join_element_wise` concatenates to frame `values`; one constant header when
    they all have one length (packed rows of a view without strings)."""
    lengths = pc.binary_length(values)
    low, high = pc.min_max(lengths).values()
    if low == high:
        return [pa.scalar(b"$%d\r\n" % low.as_py(), pa.binary()), values, _CRLF]
    digits = pc.cast(pc.cast(lengths, pa.string()), pa.binary())
    return [_DOLLAR, digits, _CRLF, values, _CRLF]


class _Chunk:
    """Up to PACK_ROWS keys and their packed rows, framed on first use: pairs (key, row, key,
    row...) for MSETNX, or keys and rows apart for the script."""

    def __init__(self, keys: pa.BinaryArray, rows: pa.BinaryArray) -> None:
        self.size = len(keys)
        self._raw = (keys, rows)
        self._pairs: _Frames | None = None
        self._apart: tuple[_Frames, _Frames] | None = None

    # Two threads may both build one of them: the same result, built twice at worst.
    def pairs(self) -> _Frames:
        if self._pairs is None:
            self._pairs = _Frames(*self._raw)
        return self._pairs

    def apart(self) -> tuple[_Frames, _Frames]:
        if self._apart is None:
            keys, rows = self._raw
            self._apart = (_Frames(keys), _Frames(rows))
        return self._apart


class _Progress:
    """Shared by the batches of one write: whether every key met so far was new."""

    all_new = True


class BatchWriter:
    """Writes keys and packed rows in atomic newest-wins batches (see the module docstring)."""

    def __init__(self, pool: redis.ConnectionPool, client: redis.Redis) -> None:
        self._pool = pool
        self._client = client  # to load the script when the server lacks it

    def write(self, keys: pa.BinaryArray, rows: pa.Table, layout: RowLayout) -> int:
        """Write `rows` (a `latest_rows` table) under `keys`; the number of rows written."""
        progress = _Progress()
        if len(keys) <= BATCH_KEYS:
            return self._batch(_Chunk(keys, layout.pack_array(rows)), 0, len(keys), progress)
        with ThreadPoolExecutor(WRITE_CONNECTIONS, thread_name_prefix="redis-write") as pool:
            futures: list[Future[int]] = []
            for start in range(0, len(keys), PACK_ROWS):
                chunk = _Chunk(
                    keys.slice(start, PACK_ROWS), layout.pack_array(rows.slice(start, PACK_ROWS))
                )
                for first in range(0, chunk.size, BATCH_KEYS):
                    last = min(first + BATCH_KEYS, chunk.size)
                    futures.append(pool.submit(self._batch, chunk, first, last, progress))
            try:
                return sum(future.result() for future in futures)
            except BaseException:
                for future in futures:  # fail once, not once per remaining batch
                    future.cancel()
                raise

    def _batch(self, chunk: _Chunk, first: int, last: int, progress: _Progress) -> int:
        count = last - first
        if progress.all_new:
            head = b"*%d\r\n$6\r\nMSETNX\r\n" % (1 + 2 * count)
            if self._call([head, chunk.pairs().span(first, last)]) == 1:
                return count
            progress.all_new = False  # a key exists: the script decides, from now on
        digits = b"%d" % count
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$%d\r\n%s\r\n" % (
            3 + 2 * count,
            SCRIPT_SHA,
            len(digits),
            digits,
        )
        keys, rows = chunk.apart()
        return int(self._call([head, keys.span(first, last), rows.span(first, last)]))

    def _call(self, command: list[bytes | memoryview]) -> Any:
        """Send a packed command on a pooled redis-py connection and return its answer.

        As the store's redis-py client does: a connection error is retried once (the pool
        reconnects), a timeout is not. A missing script (a restarted or flushed server) is
        loaded and the command sent again."""
        retried = loaded = False
        while True:
            connection = self._pool.get_connection()
            try:
                connection.send_packed_command(command, check_health=False)
                return connection.read_response()
            except rex.NoScriptError:
                if loaded:
                    raise
                loaded = True
                self._client.script_load(WRITE_SCRIPT)
            except rex.ConnectionError:
                connection.disconnect()
                if retried:
                    raise
                retried = True
            except BaseException:
                connection.disconnect()  # a late or partial answer must not be read later
                raise
            finally:
                self._pool.release(connection)
