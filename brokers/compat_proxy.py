"""A loopback proxy in front of tansu that makes its ApiVersions answer readable to
librdkafka before 2.1 (Debian's kcat, and the Go, .NET and Node clients built on it).

tansu 0.6.0 answers ApiVersions v3 with every tagged field of the response body, those
at their default values included (an empty SupportedFeatures, FinalizedFeaturesEpoch
-1, ...). That is valid Kafka protocol, but Apache Kafka leaves default-valued tagged
fields out, and librdkafka 2.0 misreads them ("Protocol read buffer underflow for
ApiVersion v3"), so it cannot connect at all. The proxy drops those default-valued
fields from the first response of a connection when it answers ApiVersions v3 or
later; every other byte passes through unchanged. Clients send ApiVersions first, once
per connection, so after that first answer the proxy only copies bytes.

tansu advertises the proxy's address, so every connection a client opens (bootstrap
and per broker) goes through it.

    python -m brokers.compat_proxy LISTEN_PORT UPSTREAM_PORT
"""

import asyncio
import contextlib
import io
import struct
import sys

from aiokafka.protocol.types import UnsignedVarInt32

API_VERSIONS = 18
CHUNK = 1 << 18
# ApiVersionsResponse v3+ body tags and the encodings of their default values:
# SupportedFeatures (empty compact array), FinalizedFeaturesEpoch (-1),
# FinalizedFeatures (empty), ZkMigrationReady (false).
DEFAULT_TAGS = {0: b"\x01", 1: b"\xff" * 8, 2: b"\x01", 3: b"\x00"}


def without_default_tags(response: bytes) -> bytes:
    """An ApiVersionsResponse (v3+, header included, length prefix excluded) with its
    body's default-valued tagged fields left out. Unparseable input is returned as is."""
    data = io.BytesIO(response)
    try:
        data.seek(4 + 2)  # correlation id (header v0, no tags), error code
        for _ in range(max(UnsignedVarInt32.decode(data) - 1, 0)):
            data.seek(6, io.SEEK_CUR)  # api key, min version, max version
            for _ in range(UnsignedVarInt32.decode(data)):  # its tagged fields
                UnsignedVarInt32.decode(data)
                data.seek(UnsignedVarInt32.decode(data), io.SEEK_CUR)
        data.seek(4, io.SEEK_CUR)  # throttle time
        body_tags_at = data.tell()
        kept = []
        for _ in range(UnsignedVarInt32.decode(data)):
            start = data.tell()
            tag = UnsignedVarInt32.decode(data)
            size = UnsignedVarInt32.decode(data)
            value = data.read(size)
            if len(value) < size:
                return response
            if DEFAULT_TAGS.get(tag) != value:
                kept.append(response[start:data.tell()])
    except (struct.error, ValueError):
        return response
    if data.tell() != len(response):
        return response
    return (response[:body_tags_at] + UnsignedVarInt32.encode(len(kept))
            + b"".join(kept))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve_client(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                       upstream_port: int) -> None:
    try:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_w.close()
        return
    try:
        first = await read_frame(client_r)
    except (ConnectionError, asyncio.IncompleteReadError):
        client_w.close()
        broker_w.close()
        return
    broker_w.write(struct.pack(">i", len(first)) + first)
    api_key, api_version = struct.unpack(">hh", first[:4])
    upstream = asyncio.create_task(pump(client_r, broker_w))
    try:
        if api_key == API_VERSIONS and api_version >= 3:
            response = without_default_tags(await read_frame(broker_r))
            client_w.write(struct.pack(">i", len(response)) + response)
        await pump(broker_r, client_w)
    except (ConnectionError, asyncio.IncompleteReadError):
        client_w.close()
    finally:
        upstream.cancel()
        broker_w.close()


async def main(listen_port: int, upstream_port: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, upstream_port), "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
