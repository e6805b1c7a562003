#!/bin/bash
# Points nginx at $backend.
set -eu
apt-get install -y -q nginx
printf 'server { listen 80; location / { proxy_pass http://%s; } }\n' "$backend" > /etc/nginx/sites-enabled/default
systemctl restart nginx
