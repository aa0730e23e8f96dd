"""The `kafka` connector: a source over topic partitions and an exactly-once (per batch) sink.

See `source.py` and `sink.py` for the options and the guarantees;
`read_topic` reads a sink's output the way a deduplicating consumer must.
"""

from __future__ import annotations

from stream_dsl.connectors.kafka.sink import KafkaSink, read_topic
from stream_dsl.connectors.kafka.source import KafkaSource
from stream_dsl.connectors.kafka.options import SOURCE_SPECS
from stream_dsl.connectors.kafka.sink import SINK_SPECS
from stream_dsl.ir.definitions import SinkDef, SourceDef

OPTION_SPECS = {"source": SOURCE_SPECS, "sink": SINK_SPECS}
SPLITS = True  # a part of a split stream reads every n-th of the stream's partitions (`source.my_partitions`)


def make_source(definition: SourceDef) -> KafkaSource:
    return KafkaSource(definition)


def make_sink(definition: SinkDef) -> KafkaSink:
    return KafkaSink(definition)


__all__ = ["KafkaSink", "KafkaSource", "make_sink", "make_source", "read_topic"]
