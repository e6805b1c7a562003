#!/bin/bash
# Installs Apache with PHP 7.4 and the modules ownCloud 10 needs (Ubuntu
# 20.04 ships PHP 7.4, the version ownCloud 10 supports).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q apache2 libapache2-mod-php php-mysql php-xml php-mbstring php-gd \
  php-curl php-zip php-intl php-json bzip2 curl
a2enmod rewrite headers env dir mime
