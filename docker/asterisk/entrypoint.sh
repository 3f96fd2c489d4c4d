#!/bin/sh
# Render dialplan/*.conf (the @NAME@ placeholders) from environment variables
# into /etc/asterisk, then run Asterisk in the foreground.
set -eu

: "${SIP_BIND:=0.0.0.0}" "${SIP_PORT:=5060}"
: "${CALLER_MATCH:?set CALLER_MATCH to your SBC/carrier address(es); their caller IDs are trusted}"
: "${AGENT_HOST:=127.0.0.1}"
: "${AGENT1_PORT:=5081}" "${AGENT2_PORT:=5082}" "${AGENT3_PORT:=5083}" "${AGENT4_PORT:=5084}"
: "${HTTP_BIND:=0.0.0.0}" "${HTTP_PORT:=8088}"
: "${ARI_USER:=ivr}" "${ARI_PASSWORD:?set ARI_PASSWORD}"
: "${AMI_BIND:=0.0.0.0}" "${AMI_PORT:=5038}" "${AMI_USER:=ivr}" "${AMI_PASSWORD:?set AMI_PASSWORD}"
: "${STASIS_APP:=ivr}"
: "${AGI_HOST:=ivr}" "${AGI_PORT:=4573}"
: "${MAX_CALL_S:=900}"

for src in /usr/share/kanaal/dialplan/*.conf; do
  dst="/etc/asterisk/$(basename "$src")"
  sed -e "s|@SIP_BIND@|$SIP_BIND|g" -e "s|@SIP_PORT@|$SIP_PORT|g" \
      -e "s|@CALLER_MATCH@|$CALLER_MATCH|g" -e "s|@AGENT_HOST@|$AGENT_HOST|g" \
      -e "s|@AGENT1_PORT@|$AGENT1_PORT|g" -e "s|@AGENT2_PORT@|$AGENT2_PORT|g" \
      -e "s|@AGENT3_PORT@|$AGENT3_PORT|g" -e "s|@AGENT4_PORT@|$AGENT4_PORT|g" \
      -e "s|@HTTP_BIND@|$HTTP_BIND|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
      -e "s|@ARI_USER@|$ARI_USER|g" -e "s|@ARI_PASSWORD@|$ARI_PASSWORD|g" \
      -e "s|@AMI_BIND@|$AMI_BIND|g" -e "s|@AMI_PORT@|$AMI_PORT|g" \
      -e "s|@AMI_USER@|$AMI_USER|g" -e "s|@AMI_PASSWORD@|$AMI_PASSWORD|g" \
      -e "s|@STASIS_APP@|$STASIS_APP|g" -e "s|@AGI_HOST@|$AGI_HOST|g" \
      -e "s|@AGI_PORT@|$AGI_PORT|g" -e "s|@MAX_CALL_S@|$MAX_CALL_S|g" \
      "$src" > "$dst"
  if grep -qE '@[A-Z][A-Z0-9_]*@' "$dst"; then
    echo "unfilled placeholder in $dst:" >&2
    grep -nE '@[A-Z][A-Z0-9_]*@' "$dst" >&2
    exit 1
  fi
done
# manager.conf permits only loopback by default; inside compose the app
# connects over the compose network
sed -i 's|^permit=127.0.0.1/255.255.255.255|permit=0.0.0.0/0.0.0.0|' /etc/asterisk/manager.conf

chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/log/asterisk \
  /var/spool/asterisk /run/asterisk /var/cache/asterisk
exec asterisk -f -n -U asterisk -G asterisk
