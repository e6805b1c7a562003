#!/bin/bash
# Installs MySQL and sets its root password. Input: root_password.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q mysql-server
# Ubuntu's MySQL authenticates root over the socket; give it a password too.
mysql -u root <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED WITH mysql_native_password BY '${root_password}';
FLUSH PRIVILEGES;
SQL
cat > /root/.my.cnf <<CNF
[client]
user=root
password=${root_password}
CNF
chmod 600 /root/.my.cnf
