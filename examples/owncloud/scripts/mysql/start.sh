#!/bin/bash
# Makes MySQL listen on the network, on the given port, and starts it.
# Input: port.
set -eu
cat > /etc/mysql/mysql.conf.d/zz-ecrae.cnf <<CNF
[mysqld]
bind-address = 0.0.0.0
port = ${port}
CNF
systemctl enable mysql
systemctl restart mysql
