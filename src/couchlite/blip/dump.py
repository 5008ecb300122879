"""Decode a recorded BLIP session (interop JSONL format) into readable text or JSON lines.

Usage: ``python -m couchlite.blip.dump FILE.jsonl [--json]``

Each direction gets its own :class:`BlipProtocol` in non-strict numbering mode (a recording's
directions are decoded separately, so responses arrive for requests "never sent"); every frame is
checked (framing, CRC, inflate) exactly as a live connection would. Exit status: 0 on success,
1 when a frame fails to decode, 2 for an unreadable file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from couchlite.blip.codec import decode_ack_payload, parse_frame_header
from couchlite.blip.errors import BlipError
from couchlite.blip.message import Message, flag_names
from couchlite.blip.protocol import BlipProtocol

_ARROWS = {"c2s": "→", "s2c": "←"}
_BODY_PREVIEW = 2000


def body_value(body: bytes) -> Any:
    """The body as the recordings show it: parsed JSON, else ``{"hex": ...}``."""
    if body:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return {"hex": body.hex()}


def message_record(direction: str, message: Message) -> dict[str, Any]:
    return {
        "dir": direction,
        "msgno": message.number,
        "type": message.type.wire_name,
        "flags": [n for n in flag_names(message.flags) if n != "moreComing"],
        "properties": message.properties,
        "body": body_value(message.body),
    }


def _body_text(body: bytes) -> list[str]:
    if not body:
        return []
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        text = json.dumps(parsed, indent=2, ensure_ascii=False)
        if len(text) > _BODY_PREVIEW:
            text = text[:_BODY_PREVIEW] + f"\n… ({len(body)} bytes in all)"
        return text.splitlines()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        more = f" … ({len(body)} bytes)" if len(text) > 200 else ""
        return [f"text: {text[:200]!r}{more}"]
    more = f" … ({len(body)} bytes)" if len(body) > 64 else ""
    return [f"hex: {body[:64].hex(' ')}{more}"]


def _message_lines(direction: str, message: Message) -> Iterator[str]:
    flags = ",".join(n for n in flag_names(message.flags) if n != "moreComing")
    head = f"{_ARROWS.get(direction, '?')} {direction} {message.type.wire_name} #{message.number}"
    if flags:
        head += f" [{flags}]"
    props = dict(message.properties)
    profile = props.pop("Profile", None)
    if profile:
        head += f" {profile}"
    if message.is_error:
        head += f"  {message.error_domain}/{message.error_code}"
    if message.frame_count > 1:
        head += f"  ({message.frame_count} frames)"
    yield head
    for key, value in props.items():
        yield f"      {key}: {value}"
    for line in _body_text(message.body):
        yield f"    | {line}"


def dump(path: Path, as_json: bool, out: TextIO) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        print(f"{path}: empty file", file=sys.stderr)
        return 2
    header = json.loads(lines[0])
    if not as_json:
        out.write(f"scenario: {header.get('scenario')}\n")
        if header.get("description"):
            out.write(f"description: {header['description']}\n")
        out.write(f"subprotocol: {header.get('subprotocol')}\n\n")
    decoders = {
        "c2s": BlipProtocol(strict_numbering=False),
        "s2c": BlipProtocol(strict_numbering=False),
    }
    status = 0
    for line in lines[1:]:
        if not line.strip():
            continue
        record = json.loads(line)
        if "close" in record:
            if not as_json:
                out.write(f"\nclose: {json.dumps(record['close'], ensure_ascii=False)}\n")
            continue
        direction = record.get("dir", "?")
        decoder = decoders.get(direction)
        if decoder is None or "hex" not in record:
            continue
        frame = bytes.fromhex(record["hex"])
        try:
            frame_header = parse_frame_header(frame)
            if frame_header.is_ack and not as_json:
                assert frame_header.type is not None
                out.write(
                    f"{_ARROWS.get(direction, '?')} {direction} {frame_header.type.wire_name}"
                    f" #{frame_header.number}  acknowledges"
                    f" {decode_ack_payload(frame_header, frame)} bytes\n"
                )
            messages = decoder.receive_frame(frame)
        except BlipError as exc:
            where = f"{direction} frame i={record.get('i')}"
            print(f"error: {where}: {exc} (close code {exc.close_code})", file=sys.stderr)
            if not as_json:
                out.write(f"!! {direction} frame i={record.get('i')}: {exc}\n")
            status = 1
            decoders[direction] = BlipProtocol(strict_numbering=False)
            continue
        for message in messages:
            if as_json:
                out.write(json.dumps(message_record(direction, message), ensure_ascii=False) + "\n")
            else:
                out.write("\n".join(_message_lines(direction, message)) + "\n")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m couchlite.blip.dump",
        description="Decode a recorded BLIP session (interop JSONL) frame by frame.",
    )
    parser.add_argument("file", type=Path, help="recording (.jsonl)")
    parser.add_argument("--json", action="store_true", help="one JSON object per message")
    args = parser.parse_args(argv)
    try:
        return dump(args.file, args.json, sys.stdout)
    except BrokenPipeError:
        return 0  # output piped into head & co.
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
