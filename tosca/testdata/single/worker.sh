#!/bin/bash
# Starts $jobs workers.
set -eu
for i in $(seq "$jobs"); do
  echo "worker $i" >> /var/log/worker.log
done
