"""The Faust application: topics, the customer table and the agents that wire the
pure rules to Kafka."""
