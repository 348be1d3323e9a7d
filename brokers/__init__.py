"""Brokers for the demo, the tests and the benchmarks: the embedded tansu broker
(memory, no transactions) and a real Apache Kafka in KRaft mode."""
