#!/usr/bin/env bash
# Replay docker/Dockerfile and docker/asterisk/Dockerfile's steps in debootstrapped
# chroots and check the result, for a machine without a Docker engine (root, network,
# debootstrap; about 10 minutes and 2.5 GB the first time). Not part of CI.
#
#   bash scripts/docker_chroot_check.sh [WORKDIR]     (default /var/tmp/kanaal-docker-build)
#
# The node image: bookworm + Debian's Python 3.11 (the python:3.11-slim image's stand-in),
# `pip install .`, the uid-10001 user; then, as that user, a migration, a synthesised
# prompt in the prompts folder, and `ivr serve` refusing default secrets off loopback.
# The Asterisk image: sid + asterisk, the entrypoint run with test values on a private
# loopback address and unusual ports (so no test rig is disturbed), the loaded settings
# printed, ARI asked with and without the password, Asterisk stopped.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-/var/tmp/kanaal-docker-build}
mkdir -p "$W"
APP=$W/app AST=$W/asterisk
APT="apt-get -o Acquire::Check-Valid-Until=false"
cleanup() { for r in "$APP" "$AST"; do mountpoint -q "$r/proc" && umount "$r/proc"; done; true; }
trap cleanup EXIT

[ -f "$APP/etc/debian_version" ] || debootstrap --variant=minbase bookworm "$APP" http://deb.debian.org/debian
[ -f "$AST/etc/debian_version" ] || debootstrap --variant=minbase sid "$AST" http://deb.debian.org/debian

echo "== node image"
cp /etc/resolv.conf "$APP/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$APP/root/host-ca.crt"  # this machine's CA set for pip
mountpoint -q "$APP/proc" || mount -t proc proc "$APP/proc"
chroot "$APP" $APT update -qq
chroot "$APP" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3 python3-pip ca-certificates sox flite espeak-ng >/dev/null
rm -rf "$APP/opt/kanaal" && mkdir -p "$APP/opt/kanaal"
cp "$SRC/pyproject.toml" "$SRC/README.md" "$APP/opt/kanaal/"
cp -r "$SRC/ivr" "$SRC/grammars" "$SRC/sounds" "$APP/opt/kanaal/"
find "$APP/opt/kanaal" -name __pycache__ -prune -exec rm -rf {} +
CLEAN=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root PIP_CERT=/root/host-ca.crt)
chroot "$APP" "${CLEAN[@]}" sh -c 'cd /opt/kanaal && pip install -q --no-cache-dir --break-system-packages . \
  && (getent group kanaal >/dev/null || groupadd --system --gid 10001 kanaal) \
  && (id kanaal >/dev/null 2>&1 || useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kanaal --no-create-home kanaal) \
  && install -d -o 10001 -g 10001 -m 0755 /var/lib/kanaal /var/lib/kanaal/prompts /var/lib/kanaal/node /var/lib/kanaal/spool'
AS_APP=(chroot --userspec=10001:10001 "$APP" env -i PATH=/usr/local/bin:/usr/bin:/bin
        HOME=/var/lib/kanaal IVR_DATA_DIR=/var/lib/kanaal/node IVR_PROMPT_DIR=/var/lib/kanaal/prompts)
"${AS_APP[@]}" sh -c 'cd /opt/kanaal && ivr db upgrade'
"${AS_APP[@]}" sh -c 'cd /opt/kanaal && python3 -c "
import asyncio
from pathlib import Path
from ivr.speech.tts import PromptSynthesizer, default_tts
p = asyncio.run(PromptSynthesizer(default_tts(), Path(\"/var/lib/kanaal/prompts/dynamic\")).synthesize(\"Your order is on its way\", \"en\"))
print(\"prompt written as uid 10001:\", p, p.stat().st_size, \"bytes\")"'
if "${AS_APP[@]}" IVR_WEB_HOST=0.0.0.0 sh -c 'cd /opt/kanaal && timeout 60 ivr serve' 2>"$W/serve.err"; then
  echo "FAIL: ivr serve started with default secrets on 0.0.0.0"; exit 1
fi
grep -q "refusing to serve" "$W/serve.err" && echo "ivr serve refuses default secrets: ok"

echo "== asterisk image"
cp /etc/resolv.conf "$AST/etc/resolv.conf"
mountpoint -q "$AST/proc" || mount -t proc proc "$AST/proc"
chroot "$AST" $APT update -qq
chroot "$AST" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  asterisk asterisk-modules >/dev/null
chroot "$AST" sh -c "sed -i 's/^\[directories\](!)/[directories]/' /etc/asterisk/asterisk.conf \
 && mkdir -p /var/spool/asterisk/kanaal /run/asterisk \
 && install -d -o 10001 -g 10001 -m 0755 /var/lib/kanaal /var/lib/kanaal/prompts"
mkdir -p "$AST/usr/share/kanaal/dialplan"
cp "$SRC"/dialplan/*.conf "$SRC/docker/asterisk/rtp.conf" "$AST/usr/share/kanaal/dialplan/"
install -m 0755 "$SRC/docker/asterisk/entrypoint.sh" "$AST/usr/local/bin/kanaal-asterisk"
A=127.31.0.10 PW=ari-Zq8vN3kT7wL2xR5m
chroot "$AST" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ARI_PASSWORD=$PW AMI_PASSWORD=ami-Zq8vN3kT7wL2xR5m \
  HTTP_BIND=$A AMI_BIND=$A AMI_PERMIT=127.31.0.0/255.255.255.0 HTTP_PORT=28088 AMI_PORT=25038 \
  SIP_BIND=$A SIP_PORT=25060 AGI_HOST=127.31.0.21 CALLER_MATCH=198.51.100.7 \
  PUBLIC_ADDRESS=203.0.113.5 LOCAL_NET=127.31.0.0/24 RTP_START=31000 RTP_END=31099 \
  /usr/local/bin/kanaal-asterisk >"$W/asterisk.log" 2>&1 &
pid=$!
stop_asterisk() { chroot "$AST" asterisk -rx "core stop now" >/dev/null 2>&1 || kill "$pid" 2>/dev/null; cleanup; }
trap stop_asterisk EXIT
for _ in $(seq 60); do grep -q "Asterisk Ready" "$W/asterisk.log" && break; sleep 1; done
sleep 3
for c in "core show uptime" "rtp show settings" "pjsip show transport transport-udp" \
         "pjsip show identify caller" "manager show user ivr" "http show status"; do
  echo "### $c"; chroot "$AST" asterisk -rx "$c" | grep -vE '^\s*$' | head -30
done
echo "### listening"; ss -lntup | grep -E "$A" || true
echo "ARI with the password: $(curl -s -o /dev/null -w '%{http_code}' -u "ivr:$PW" "http://$A:28088/ari/asterisk/info") (want 200)"
echo "ARI with a wrong one:  $(curl -s -o /dev/null -w '%{http_code}' -u ivr:wrong "http://$A:28088/ari/asterisk/info") (want 401)"
