#!/bin/bash
# Installs (create) or starts (start, with $db_url) the application.
set -eu
echo "app: ${db_url:-installed}"
