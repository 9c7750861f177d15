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
#   openvpn-up N [STATUS_VERSION]   add an OpenVPN 2.6 server to host N (UDP 1194
#                 on 198.18.<N>.5, tunnel 10.78.<N>.0/24, management on the host's
#                 127.0.0.1:7505, status file rewritten every second) and two
#                 clients, alice and bob, in the client namespace
#   openvpn-status N [VERSION]   the server's status through its management port
#   openvpn-ping N CLIENT [COUNT [SIZE]]   ping the server over CLIENT's tunnel
#   openvpn-client N CLIENT   (re)start CLIENT's OpenVPN client (after it gave up)
#   conf-client N FILE   bring up a WireGuard client from a wg-quick FILE (a
#                 generated client config) in a third namespace tgd<N>, which
#                 reaches the host over its own veth (198.18.<N>.9 <-> .10);
#                 run again to replace it
#   conf-ping N [COUNT]  ping the server's tunnel address through that client
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

conf_client_down() {
  kill_ns_processes "tgd$n"
  ip netns del "tgd$n" 2>/dev/null || true
  rm -f "/var/run/wireguard/tgn$n.sock"
}

conf_client_up() {
  local conf=$1 ns="tgd$n" iface="tgn$n" addr
  [[ -f "$dir/env" ]] || die "host $n is not up"
  [[ -r "$conf" ]] || die "cannot read $conf"
  conf_client_down
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  in_host ip link add "tghd$n" type veth peer name "tgdh$n" netns "$ns"
  in_host ip addr add "198.18.$n.9/30" dev "tghd$n"
  in_host ip link set "tghd$n" up
  ip netns exec "$ns" ip addr add "198.18.$n.10/30" dev "tgdh$n"
  ip netns exec "$ns" ip link set "tgdh$n" up
  ip netns exec "$ns" ip route add default via "198.18.$n.9"
  ip netns exec "$ns" wireguard-go "$iface" >/dev/null 2>&1
  # wg-quick's own keys (Address, DNS) configure the interface, not wg.
  cp "$conf" "$dir/$iface.conf"
  ip netns exec "$ns" wg setconf "$iface" <(wg-quick strip "$dir/$iface.conf")
  addr=$(sed -n 's/^Address *= *//p' "$conf" | cut -d, -f1)
  ip netns exec "$ns" ip addr add "$addr" dev "$iface"
  ip netns exec "$ns" ip link set "$iface" up
  # Only the server's tunnel address goes through the tunnel.
  ip netns exec "$ns" ip route add "$tun_server/32" dev "$iface"
}

down() {
  conf_client_down
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
  # The interface's wg-quick file, as on a real host (revoke and restore edit it).
  cat > "$dir/$siface.conf" <<EOF
# test host $n, written by testhost.sh
[Interface]
PrivateKey = $(cat "$dir/server.key")
ListenPort = 51820
Address = $tun_server/24

### Client client
[Peer]
PublicKey = $(cat "$dir/client.pub")
PresharedKey = $(cat "$dir/psk")
AllowedIPs = $tun_client/32

[Peer]
PublicKey = $(cat "$dir/idle.pub")
AllowedIPs = $tun_idle/32, fd77:$n::3/128
PersistentKeepalive = 25
EOF

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

# A throwaway PKI: EC keys, valid two days.
make_pki() {
  local o="$dir/ovpn" name
  mkdir -p "$o"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$o/ca.key" -out "$o/ca.crt" -subj "/CN=tollgate-test-ca-$n" 2>/dev/null
  for name in server alice bob; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$o/$name.key" -out "$o/$name.csr" -subj "/CN=$name" 2>/dev/null
    if [[ $name == server ]]; then
      printf 'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyAgreement\n' > "$o/$name.ext"
    else
      printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyAgreement\n' > "$o/$name.ext"
    fi
    openssl x509 -req -in "$o/$name.csr" -CA "$o/ca.crt" -CAkey "$o/ca.key" -CAcreateserial \
      -days 2 -extfile "$o/$name.ext" -out "$o/$name.crt" 2>/dev/null
  done
}

openvpn_up() {
  local version=${1:-2} o="$dir/ovpn" name
  [[ -f "$dir/env" ]] || die "host $n is not up"
  [[ "$version" =~ ^[123]$ ]] || die "STATUS_VERSION must be 1, 2 or 3"
  kill_openvpn
  make_pki
  mkdir -p "$o/ccd"
  cat > "$o/server.conf" <<EOF
dev tgo$n
dev-type tun
proto udp4
local $host_c_addr
port 1194
topology subnet
server 10.78.$n.0 255.255.255.0
ca $o/ca.crt
cert $o/server.crt
key $o/server.key
dh none
keepalive 2 10
management 127.0.0.1 7505
client-config-dir $o/ccd
status $o/openvpn-status.log 1
status-version $version
log $o/server.log
writepid $o/server.pid
verb 3
EOF
  in_host openvpn --config "$o/server.conf" --daemon
  for name in alice bob; do
    cat > "$o/$name.conf" <<EOF
client
dev tgo$n$name
dev-type tun
proto udp4
remote $host_c_addr 1194
nobind
ca $o/ca.crt
cert $o/$name.crt
key $o/$name.key
remote-cert-tls server
log $o/$name.log
writepid $o/$name.pid
verb 3
EOF
    start_openvpn_client "$name"
  done
  for _ in $(seq 1 150); do
    if grep -q 'Initialization Sequence Completed' "$o/alice.log" 2>/dev/null \
      && grep -q 'Initialization Sequence Completed' "$o/bob.log" 2>/dev/null \
      && [[ $(management "status 3" | grep -c '^CLIENT_LIST') -ge 2 ]]; then
      cat >> "$dir/env" <<EOF
TESTHOST_OPENVPN_MANAGEMENT_PORT=7505
TESTHOST_OPENVPN_STATUS=$o/openvpn-status.log
TESTHOST_OPENVPN_CCD=$o/ccd
TESTHOST_OPENVPN_SERVER_IP=10.78.$n.1
EOF
      return 0
    fi
    sleep 0.2
  done
  die "OpenVPN clients did not connect (see $o/*.log)"
}

# Starts (or restarts) one OpenVPN client in the client namespace.
start_openvpn_client() {
  local o="$dir/ovpn" pid
  pid=$(cat "$o/$1.pid" 2>/dev/null || true)
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && sleep 0.3
  in_client openvpn --config "$o/$1.conf" --daemon
}

kill_openvpn() {
  local pid
  for pid in $(ip netns pids "$hns" 2>/dev/null) $(ip netns pids "$cns" 2>/dev/null); do
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == openvpn ]] && kill "$pid" 2>/dev/null
  done
  sed -i '/^TESTHOST_OPENVPN_/d' "$dir/env" 2>/dev/null || true
  return 0
}

# One command on the management port, from inside the host namespace.
management() {
  in_host bash -c 'exec 3<>/dev/tcp/127.0.0.1/7505; printf "%s\n" "$1" >&3; sleep 0.5; printf "quit\n" >&3; cat <&3' _ "$1"
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
TESTHOST_WG_CONF=$dir/$siface.conf
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
  openvpn-up) openvpn_up "${3:-2}" ;;
  openvpn-status) management "status ${3:-3}" ;;
  openvpn-client)
    [[ "${3:-}" == alice || "${3:-}" == bob ]] || die "CLIENT is alice or bob"
    start_openvpn_client "$3"
    ;;
  openvpn-ping)
    client=${3:-}; count=${4:-3}; size=${5:-56}
    [[ "$client" == alice || "$client" == bob ]] || die "CLIENT is alice or bob"
    [[ "$count" =~ ^[0-9]+$ && "$size" =~ ^[0-9]+$ ]] || die "COUNT and SIZE must be numbers"
    in_client ping -q -c "$count" -i 0.2 -W 2 -s "$size" -I "tgo$n$client" "10.78.$n.1" >/dev/null
    ;;
  conf-client) conf_client_up "${3:-}" ;;
  conf-ping)
    count=${3:-3}
    [[ "$count" =~ ^[0-9]+$ ]] || die "COUNT must be a number"
    ip netns exec "tgd$n" ping -q -c "$count" -i 0.3 -W 2 "$tun_server" >/dev/null
    ;;
  *) die "unknown command '$cmd'" ;;
esac
