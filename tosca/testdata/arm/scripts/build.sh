#!/bin/bash
# Builds the aarch64-only image.
set -eu
uname -m
