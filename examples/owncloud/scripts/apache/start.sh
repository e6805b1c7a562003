#!/bin/bash
# Starts Apache.
set -eu
systemctl enable apache2
systemctl restart apache2
