#!/bin/bash
# Downloads ownCloud server 10 into /var/www/owncloud.
set -eu
cd /tmp
curl -fsSLO https://download.owncloud.com/server/stable/owncloud-complete-latest.tar.bz2
tar -xjf owncloud-complete-latest.tar.bz2 -C /var/www
chown -R www-data:www-data /var/www/owncloud
