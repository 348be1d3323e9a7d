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
import struct
import sys

API_VERSIONS = 18
CHUNK = 1 << 18
# ApiVersionsResponse v3+ body tags and the encodings of their default values:
# SupportedFeatures (empty compact array), FinalizedFeaturesEpoch (-1),
# FinalizedFeatures (empty), ZkMigrationReady (false).
DEFAULT_TAGS = {0: b"\x01", 1: b"\xff" * 8, 2: b"\x01", 3: b"\x00"}


def read_uvarint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def without_default_tags(response: bytes) -> bytes:
    """An ApiVersionsResponse (v3+, header included, length prefix excluded) with its
    body's default-valued tagged fields left out. Unparseable input is returned as is."""
    try:
        i = 4 + 2  # correlation id (header v0, no tags), error code
        count, i = read_uvarint(response, i)
        for _ in range(max(count - 1, 0)):
            i += 6  # api key, min version, max version
            tags, i = read_uvarint(response, i)
            for _ in range(tags):
                _, i = read_uvarint(response, i)
                size, i = read_uvarint(response, i)
                i += size
        i += 4  # throttle time
        body_tags_at = i
        tags, i = read_uvarint(response, i)
        kept = []
        for _ in range(tags):
            start = i
            tag, i = read_uvarint(response, i)
            size, i = read_uvarint(response, i)
            value = response[i:i + size]
            i += size
            if DEFAULT_TAGS.get(tag) != value:
                kept.append(response[start:i])
        if i != len(response):
            return response
    except IndexError:
        return response
    return response[:body_tags_at] + uvarint(len(kept)) + b"".join(kept)


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
