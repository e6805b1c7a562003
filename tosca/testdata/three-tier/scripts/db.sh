#!/bin/bash
# Installs PostgreSQL.
set -eu
apt-get install -y -q postgresql
