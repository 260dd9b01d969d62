"""Kubernetes protobuf for the built-in kinds: the table-driven codec and its envelopes.

kube-apiserver and every Go client (kubectl's ``create`` generators among them) speak
``application/vnd.kubernetes.protobuf``: the bytes ``k8s\\0`` then a ``runtime.Unknown`` holding
the type and the encoded object. The field table (``_tables.py``) is generated from the Go API
types by ``_tablegen.py``; the codec maps messages to and from the JSON form the rest of the
server works with.
"""

from kaito.cluster._protobuf._codec import (
    decode_message,
    encode_message,
    format_go_duration,
    parse_go_duration,
)
from kaito.cluster._protobuf._envelope import (
    PREFIX,
    PROTOBUF,
    PROTOBUF_WATCH,
    decode_object,
    decode_watch_frames,
    encode_object,
    encode_watch_event,
    supports,
)
from kaito.cluster._protobuf._wire import ProtobufError

__all__ = (
    "PREFIX",
    "PROTOBUF",
    "PROTOBUF_WATCH",
    "ProtobufError",
    "decode_message",
    "decode_object",
    "decode_watch_frames",
    "encode_message",
    "encode_object",
    "encode_watch_event",
    "format_go_duration",
    "parse_go_duration",
    "supports",
)
