#!/usr/bin/env bash
# Creates the topics sql/demo.sql declares and writes sample records, so that a
# fresh `docker compose up` has something to query. Runs once, in the Kafka image.
set -euo pipefail
bin=/opt/kafka/bin
brokers=kafka:29092
"$bin/kafka-topics.sh" --bootstrap-server "$brokers" --create --if-not-exists \
  --topic users --partitions 4 --config cleanup.policy=compact
"$bin/kafka-topics.sh" --bootstrap-server "$brokers" --create --if-not-exists \
  --topic orders --partitions 2
for topic in users orders; do
  "$bin/kafka-console-producer.sh" --bootstrap-server "$brokers" --topic "$topic" \
    --property parse.key=true --property 'key.separator=|' <"/seed/$topic.txt"
done
echo "seeded users and orders"
