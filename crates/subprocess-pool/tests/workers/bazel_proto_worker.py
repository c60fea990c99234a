"""A Bazel persistent worker speaking the default protobuf protocol, with the
varint-delimited wire format written by hand (standard library only).

Each WorkRequest is answered with a WorkResponse: the arguments joined as output, exit
code 0; the argument "fail" answers exit code 1.
"""
import sys

if "--persistent_worker" not in sys.argv:
    sys.exit("this worker only runs as a persistent worker")

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer


def read_varint(read_byte):
    shift = value = 0
    while True:
        byte = read_byte()
        if byte is None:
            return None
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse_request(data):
    arguments, request_id, position = [], 0, 0

    def next_byte():
        nonlocal position
        if position >= len(data):
            return None
        position += 1
        return data[position - 1]

    while position < len(data):
        key = read_varint(next_byte)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value = read_varint(next_byte)
            if field == 3:
                request_id = value
        elif wire_type == 2:
            length = read_varint(next_byte)
            chunk = data[position:position + length]
            position += length
            if field == 1:
                arguments.append(chunk.decode())
        else:
            raise ValueError("unexpected wire type %d" % wire_type)
    return arguments, request_id


def stdin_byte():
    byte = stdin.read(1)
    return byte[0] if byte else None


while True:
    length = read_varint(stdin_byte)
    if length is None:
        break
    arguments, request_id = parse_request(stdin.read(length))
    failed = "fail" in arguments
    output = ("failed on purpose" if failed else " ".join(arguments)).encode()
    body = b""
    if failed:
        body += varint((1 << 3) | 0) + varint(1)
    body += varint((2 << 3) | 2) + varint(len(output)) + output
    if request_id:
        body += varint((3 << 3) | 0) + varint(request_id)
    stdout.write(varint(len(body)) + body)
    stdout.flush()
