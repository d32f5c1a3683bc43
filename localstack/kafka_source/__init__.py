"""A local stand-in for Knative `KafkaSource`: consume a topic, POST each record to a sink as a
CloudEvent, commit only after the sink accepted it, retry with backoff, dead-letter the rest."""
