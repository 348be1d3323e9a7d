"""The proxy in front of tansu: default-valued tagged fields left out of ApiVersions."""

import struct

from aiokafka.protocol.types import UnsignedVarInt32

from brokers.compat_proxy import without_default_tags


def api_versions_response(tags: list[tuple[int, bytes]]) -> bytes:
    keys = [(18, 0, 4), (0, 0, 11)]
    body = struct.pack(">ih", 7, 0) + UnsignedVarInt32.encode(len(keys) + 1)
    body += b"".join(struct.pack(">hhh", *k) + b"\x00" for k in keys)
    body += struct.pack(">i", 0) + UnsignedVarInt32.encode(len(tags))
    varint = UnsignedVarInt32.encode
    body += b"".join(varint(tag) + varint(len(v)) + v for tag, v in tags)
    return body


TANSU = [(0, b"\x01"), (1, b"\xff" * 8), (2, b"\x01"), (3, b"\x00")]


def test_tansu_s_default_tags_are_left_out_and_the_rest_is_kept() -> None:
    assert without_default_tags(api_versions_response(TANSU)) == api_versions_response([])
    # A field with a value of its own stays (an epoch, a feature list).
    kept = [(1, struct.pack(">q", 5)), (2, b"\x02\x05x")]
    assert without_default_tags(api_versions_response(TANSU[:1] + kept)) == \
        api_versions_response(kept)


def test_anything_it_cannot_read_passes_unchanged() -> None:
    response = api_versions_response(TANSU)
    assert without_default_tags(response[:-3]) == response[:-3]
    assert without_default_tags(response + b"\x00") == response + b"\x00"
    assert without_default_tags(b"") == b""
