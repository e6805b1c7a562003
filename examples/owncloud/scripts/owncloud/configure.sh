#!/bin/bash
# Installs ownCloud against the database and publishes it under
# context_root. Inputs: db_host, db_port, db_name, db_user, db_password,
# admin_user, admin_password, context_root.
set -eu
cat > /etc/apache2/conf-available/owncloud.conf <<CONF
Alias ${context_root} "/var/www/owncloud/"
<Directory /var/www/owncloud/>
  Options +FollowSymlinks
  AllowOverride All
</Directory>
CONF
a2enconf owncloud
# The database may still be starting: wait for it (up to 5 minutes).
for _ in $(seq 60); do
  if php -r "exit(@fsockopen('${db_host}', ${db_port}) ? 0 : 1);"; then break; fi
  sleep 5
done
cd /var/www/owncloud
sudo -u www-data php occ maintenance:install \
  --database mysql --database-host "${db_host}:${db_port}" \
  --database-name "${db_name}" --database-user "${db_user}" --database-pass "${db_password}" \
  --admin-user "${admin_user}" --admin-pass "${admin_password}"
sudo -u www-data php occ config:system:set trusted_domains 1 --value="$(hostname -I | awk '{print $1}')"
