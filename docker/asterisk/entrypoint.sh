#!/bin/sh
# Render the Kanaal Asterisk configuration from environment variables, then run
# Asterisk in the foreground.
#
# Every @NAME@ placeholder in /usr/share/kanaal/dialplan/*.conf (the repository's
# dialplan/ plus docker/asterisk/rtp.conf) is replaced by the environment variable
# NAME. A placeholder without a variable stops the container with its name, so a
# placeholder added to dialplan/ later (e.g. a trunk address) fails loudly until
# compose passes it. Secrets and the trunk address have no defaults on purpose.
#
#   KANAAL_RENDER_ONLY=1   render into $ASTERISK_ETC and exit (tests, dry runs)
#   KANAAL_DIALPLAN_SRC    template folder (default /usr/share/kanaal/dialplan)
#   ASTERISK_ETC           where the rendered files go (default /etc/asterisk)
set -eu

die() { echo "kanaal-asterisk: $*" >&2; exit 1; }

: "${KANAAL_DIALPLAN_SRC:=/usr/share/kanaal/dialplan}" "${ASTERISK_ETC:=/etc/asterisk}"
: "${SIP_BIND:=0.0.0.0}" "${SIP_PORT:=5060}"
: "${AGENT_HOST:=127.0.0.1}"
: "${AGENT1_PORT:=5081}" "${AGENT2_PORT:=5082}" "${AGENT3_PORT:=5083}" "${AGENT4_PORT:=5084}"
# ARI and AMI control every call: loopback unless told which private address to use.
: "${HTTP_BIND:=127.0.0.1}" "${HTTP_PORT:=8088}"
: "${AMI_BIND:=127.0.0.1}" "${AMI_PORT:=5038}" "${AMI_PERMIT:=127.0.0.1/255.255.255.255}"
: "${ARI_USER:=ivr}" "${AMI_USER:=ivr}"
: "${STASIS_APP:=ivr}"
: "${AGI_HOST:=127.0.0.1}" "${AGI_PORT:=4573}"
: "${MAX_CALL_S:=900}"
: "${RTP_START:=10000}" "${RTP_END:=10999}"
: "${PUBLIC_ADDRESS:=}" "${LOCAL_NET:=}"

[ -n "${ARI_PASSWORD:-}" ] || die "set ARI_PASSWORD"
[ -n "${AMI_PASSWORD:-}" ] || die "set AMI_PASSWORD"
# The caller endpoint trusts the From number of whoever matches: only the trunk.
[ -n "${CALLER_MATCH:-}" ] || die "set CALLER_MATCH to your SBC/carrier trunk address(es)"
case "$CALLER_MATCH" in
  *0.0.0.0/0*|*::/0*) die "CALLER_MATCH=$CALLER_MATCH trusts caller ID from anywhere; give the trunk's address(es)" ;;
esac
for secret in ARI_PASSWORD AMI_PASSWORD; do
  eval "value=\$$secret"
  [ "${#value}" -ge 16 ] || die "$secret is shorter than 16 characters"
  case "$value" in change-me*|ivr-secret|kanaal) die "$secret is a well-known default" ;; esac
done
case "$RTP_START$RTP_END" in *[!0-9]*) die "RTP_START/RTP_END must be port numbers" ;; esac
[ "$RTP_START" -ge 1024 ] && [ "$RTP_END" -le 65535 ] && [ "$RTP_START" -lt "$RTP_END" ] \
  || die "RTP range $RTP_START-$RTP_END is not 1024 <= start < end <= 65535"

# sed replacement text: escape the delimiter, & and backslashes; one line only
escape() {
  case "$1" in *"
"*) die "a setting contains a newline" ;; esac
  printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

mkdir -p "$ASTERISK_ETC"
for src in "$KANAAL_DIALPLAN_SRC"/*.conf; do
  dst="$ASTERISK_ETC/$(basename "$src")"
  cp "$src" "$dst.tmp"
  for name in $(grep -oE '@[A-Z][A-Z0-9_]*@' "$src" | tr -d @ | sort -u); do
    eval "set_=\${$name+x}"
    [ -n "$set_" ] || die "$(basename "$src") needs @$name@: set the environment variable $name"
    eval "value=\$$name"
    sed -i "s|@$name@|$(escape "$value")|g" "$dst.tmp"
  done
  mv "$dst.tmp" "$dst"
done

# AMI: permit the app nodes' network instead of loopback. Fail if manager.conf
# changed shape, rather than silently keeping (or widening) the old rule.
grep -q '^permit=127.0.0.1/255.255.255.255$' "$ASTERISK_ETC/manager.conf" \
  || die "manager.conf has no 'permit=127.0.0.1/255.255.255.255' line to replace"
sed -i "s|^permit=127.0.0.1/255.255.255.255\$|permit=$(escape "$AMI_PERMIT")|" \
  "$ASTERISK_ETC/manager.conf"

# Behind Docker's NAT the SDP must carry the address carriers and phones reach
# (the host's), not the container's; LOCAL_NET lists networks reached directly.
if [ -n "$PUBLIC_ADDRESS" ]; then
  {
    echo
    echo "; added by kanaal-asterisk (PUBLIC_ADDRESS, LOCAL_NET)"
    echo "[transport-udp](+)"
    echo "external_media_address=$PUBLIC_ADDRESS"
    echo "external_signaling_address=$PUBLIC_ADDRESS"
    for net in $LOCAL_NET; do echo "local_net=$net"; done
  } >> "$ASTERISK_ETC/pjsip.conf"
fi

[ "${KANAAL_RENDER_ONLY:-}" = "1" ] && exit 0

chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/log/asterisk \
  /var/spool/asterisk /run/asterisk /var/cache/asterisk
exec asterisk -f -n -U asterisk -G asterisk
