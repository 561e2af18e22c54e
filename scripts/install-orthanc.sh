#!/usr/bin/env bash
# Installs the DICOMweb server the DICOMweb demo and tests use: Debian's orthanc and orthanc-dicomweb.
# Idempotent and instant when both are present. Nothing is started: medlabel.dicom.orthanc runs
# /usr/sbin/Orthanc itself, on loopback, and stops it by PID.
set -euo pipefail
if [ -x /usr/sbin/Orthanc ] && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show orthanc-dicomweb >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
$SUDO apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb >/dev/null
test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so
echo "installed: $(/usr/sbin/Orthanc --version | head -1)"
