# Sourced by scripts/etcd-cluster.sh and scripts/etcd-tls.sh: checks the ports an etcd member
# is about to listen on.
#
# The default ports sit below the kernel's range of ephemeral ports (Linux's default is
# 32768-60999, /proc/sys/net/ipv4/ip_local_port_range): a port inside it can be taken at any
# moment as the local end of an outgoing connection (the tests open hundreds), and etcd then
# fails with "bind: address already in use". CI failed that way once (stop 33: the TLS member's
# peer port was 42380). A port chosen inside the range is allowed, with a warning.

# check_ports WHAT PORT... : fails, naming the port, if something already listens on one.
check_ports() {
  local what=$1 low=32768 high=60999 port
  shift
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low high </proc/sys/net/ipv4/ip_local_port_range
  fi
  for port in "$@"; do
    if [ "$port" -ge "$low" ] && [ "$port" -le "$high" ]; then
      echo "warning: $what port $port is in the ephemeral range $low-$high; an outgoing connection may take it first" >&2
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$what port $port is already in use on 127.0.0.1 (another etcd?); choose others" >&2
      return 1
    fi
  done
}
