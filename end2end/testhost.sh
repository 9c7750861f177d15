#!/usr/bin/env bash
# Test VPN hosts for Tollgate's integration and end-to-end tests.
#
# A test host N (1..250) is two network namespaces created by this script:
#   tgh<N>  the "VPN host": wireguard-go interface tgs<N> (UDP 51820) and an
#           sshd (pinned ed25519 host key, public-key auth only) on 198.18.<N>.2:22
#   tgc<N>  a WireGuard client: wireguard-go interface tgk<N> peered with tgs<N>,
#           so pings over the tunnel make a real handshake and move real bytes
# The panel (in the root namespace) reaches the host over a veth pair:
#   root tgr<N> 198.18.<N>.1/30  <->  tgh<N> 198.18.<N>.2/30
#   tgh<N> 198.18.<N>.5/30       <->  tgc<N> 198.18.<N>.6/30
# Tunnel addresses: server 10.77.<N>.1/24, client 10.77.<N>.2, idle peer 10.77.<N>.3.
# wireguard-go's control sockets live in /var/run/wireguard for every namespace,
# which is why every interface name carries N.
#
# Commands (run as root):
#   up N          create host N; tears down any leftover of N first (idempotent)
#   down N        remove host N; safe to run when nothing is there
#   ping N [COUNT [SIZE]]   ping the server over the tunnel from the client
#   sshd-stop N | sshd-start N   stop or start the host's sshd
#   sshd-freeze N | sshd-thaw N  SIGSTOP / SIGCONT the host's sshd: it accepts
#                 TCP connections but never answers (a hung host)
#   rekey N       give the host's sshd a new host key and restart it
#   wg-restart N  stop wireguard-go on the host and start it again with the same peers
#   env N         print the host's facts as shell assignments (after up)
#
# State lives in ${TOLLGATE_TESTHOST_DIR:-/tmp/tollgate-testhost}/<N>.
set -euo pipefail

die() { echo "testhost: $*" >&2; exit 1; }

cmd=${1:-}
n=${2:-}
[[ -n "$cmd" ]] || die "usage: $0 up|down|ping|sshd-stop|sshd-start|rekey|wg-restart|env N"
[[ "$n" =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 250 )) || die "N must be a number from 1 to 250, got '${n}'"
[[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"

base=${TOLLGATE_TESTHOST_DIR:-/tmp/tollgate-testhost}
dir="$base/$n"
hns="tgh$n"
cns="tgc$n"
siface="tgs$n"
ciface="tgk$n"
root_if="tgr$n"
root_addr="198.18.$n.1"
host_addr="198.18.$n.2"
host_c_addr="198.18.$n.5"
client_addr="198.18.$n.6"
tun_server="10.77.$n.1"
tun_client="10.77.$n.2"
tun_idle="10.77.$n.3"
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

in_host() { ip netns exec "$hns" "$@"; }
in_client() { ip netns exec "$cns" "$@"; }

kill_ns_processes() {
  local ns=$1 pids
  ip netns list | grep -qw "^$ns" || return 0
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [[ -z "$pids" ]] && return 0
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 30); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z "$pids" ]] && return 0
    sleep 0.1
  done
  kill -9 $pids 2>/dev/null || true
}

down() {
  kill_ns_processes "$cns"
  kill_ns_processes "$hns"
  ip netns del "$cns" 2>/dev/null || true
  ip netns del "$hns" 2>/dev/null || true
  ip link del "$root_if" 2>/dev/null || true
  rm -f "/var/run/wireguard/$siface.sock" "/var/run/wireguard/$ciface.sock"
  rm -rf "$dir"
}

start_sshd() {
  mkdir -p /run/sshd
  in_host /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 1 50); do
    [[ -s "$dir/sshd.pid" ]] && in_host bash -c "exec 3<>/dev/tcp/$host_addr/22" 2>/dev/null && return 0
    sleep 0.1
  done
  die "sshd on $hns did not start (see $dir/sshd.log)"
}

# Every sshd process in the host namespace: the listener and the session
# processes it forked (a stopped or hung host takes its sessions with it).
sshd_pids() {
  local pid
  for pid in $(ip netns pids "$hns" 2>/dev/null); do
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sshd ]] && echo "$pid"
  done
  return 0
}

stop_sshd() {
  local pids
  pids=$(sshd_pids)
  [[ -z "$pids" ]] && { rm -f "$dir/sshd.pid"; return 0; }
  kill -CONT $pids 2>/dev/null || true
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    [[ -z "$(sshd_pids)" ]] && { rm -f "$dir/sshd.pid"; return 0; }
    sleep 0.1
  done
  die "sshd on $hns did not stop"
}

host_key_fingerprint() {
  ssh-keygen -l -E sha256 -f "$dir/ssh_host_ed25519_key.pub" | awk '{print $2}'
}

start_server_wg() {
  rm -f "/var/run/wireguard/$siface.sock"
  in_host wireguard-go "$siface" >/dev/null 2>&1
  in_host wg set "$siface" private-key "$dir/server.key" listen-port 51820 \
    peer "$(cat "$dir/client.pub")" preshared-key "$dir/psk" allowed-ips "$tun_client/32" \
    peer "$(cat "$dir/idle.pub")" allowed-ips "$tun_idle/32,fd77:$n::3/128" persistent-keepalive 25
  in_host ip addr add "$tun_server/24" dev "$siface"
  in_host ip -6 addr add "fd77:$n::1/64" dev "$siface" 2>/dev/null || true
  in_host ip link set "$siface" up
}

up() {
  down
  umask 077
  mkdir -p "$dir"

  ip netns add "$hns"
  ip netns add "$cns"
  in_host ip link set lo up
  in_client ip link set lo up

  ip link add "$root_if" type veth peer name "tghr$n" netns "$hns"
  ip addr add "$root_addr/30" dev "$root_if"
  ip link set "$root_if" up
  in_host ip addr add "$host_addr/30" dev "tghr$n"
  in_host ip link set "tghr$n" up

  in_host ip link add "tghc$n" type veth peer name "tgch$n" netns "$cns"
  in_host ip addr add "$host_c_addr/30" dev "tghc$n"
  in_host ip link set "tghc$n" up
  in_client ip addr add "$client_addr/30" dev "tgch$n"
  in_client ip link set "tgch$n" up

  wg genkey > "$dir/server.key"; wg pubkey < "$dir/server.key" > "$dir/server.pub"
  wg genkey > "$dir/client.key"; wg pubkey < "$dir/client.key" > "$dir/client.pub"
  wg genkey > "$dir/idle.key"; wg pubkey < "$dir/idle.key" > "$dir/idle.pub"
  wg genpsk > "$dir/psk"

  start_server_wg

  rm -f "/var/run/wireguard/$ciface.sock"
  in_client wireguard-go "$ciface" >/dev/null 2>&1
  in_client wg set "$ciface" private-key "$dir/client.key" \
    peer "$(cat "$dir/server.pub")" preshared-key "$dir/psk" endpoint "$host_c_addr:51820" \
    allowed-ips "10.77.$n.0/24" persistent-keepalive 25
  in_client ip addr add "$tun_client/24" dev "$ciface"
  in_client ip link set "$ciface" up

  ssh-keygen -q -t ed25519 -N '' -C "tollgate-test-panel" -f "$dir/panel_key"
  ssh-keygen -q -t ed25519 -N '' -C "tollgate-test-host-$n" -f "$dir/ssh_host_ed25519_key"
  cp "$dir/panel_key.pub" "$dir/authorized_keys"
  cat > "$dir/sshd_config" <<EOF
Port 22
ListenAddress $host_addr
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
EOF
  start_sshd
  write_env
}

write_env() {
  cat > "$dir/env" <<EOF
TESTHOST_N=$n
TESTHOST_NETNS=$hns
TESTHOST_CLIENT_NETNS=$cns
TESTHOST_ADDR=$host_addr
TESTHOST_SSH_PORT=22
TESTHOST_SSH_USER=root
TESTHOST_SSH_KEY=$dir/panel_key
TESTHOST_HOST_KEY_FINGERPRINT=$(host_key_fingerprint)
TESTHOST_IFACE=$siface
TESTHOST_SERVER_PUBLIC_KEY=$(cat "$dir/server.pub")
TESTHOST_CLIENT_PUBLIC_KEY=$(cat "$dir/client.pub")
TESTHOST_IDLE_PUBLIC_KEY=$(cat "$dir/idle.pub")
TESTHOST_TUNNEL_SERVER_IP=$tun_server
TESTHOST_TUNNEL_CLIENT_IP=$tun_client
EOF
}

case "$cmd" in
  up) up; cat "$dir/env" ;;
  down) pids=$(sshd_pids); [[ -z "$pids" ]] || kill -CONT $pids 2>/dev/null || true; down ;;
  ping)
    count=${3:-3}; size=${4:-56}
    [[ "$count" =~ ^[0-9]+$ && "$size" =~ ^[0-9]+$ ]] || die "COUNT and SIZE must be numbers"
    in_client ping -q -c "$count" -i 0.2 -W 2 -s "$size" "$tun_server" >/dev/null
    ;;
  sshd-stop) stop_sshd ;;
  sshd-start) start_sshd ;;
  sshd-freeze) pids=$(sshd_pids); [[ -n "$pids" ]] || die "sshd is not running"; kill -STOP $pids ;;
  sshd-thaw) pids=$(sshd_pids); [[ -z "$pids" ]] || kill -CONT $pids ;;
  rekey)
    stop_sshd
    rm -f "$dir/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "tollgate-test-host-$n-rekeyed" -f "$dir/ssh_host_ed25519_key"
    start_sshd
    write_env
    ;;
  wg-restart)
    in_host ip link del "$siface" 2>/dev/null || true
    for _ in $(seq 1 50); do [[ -e "/var/run/wireguard/$siface.sock" ]] || break; sleep 0.1; done
    start_server_wg
    ;;
  env) cat "$dir/env" ;;
  *) die "unknown command '$cmd'" ;;
esac
