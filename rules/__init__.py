"""The program's rules as pure functions over the schemas: no Kafka, no clock."""
