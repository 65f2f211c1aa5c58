# The pieces of bench/hostport.sh, sourced by it and by tests/hostport_script.rs (which runs
# them against a fake `ip` without root). Every name starts with $HP_PREFIX and every address
# is in $HP_NET.0.0/16; nothing here touches the root namespace's interfaces or rules.
#
# Topology (all namespaces created here):
#
#   client (HP_NET.0.2) --veth-- node (HP_NET.0.1, forwarding, iptables nat)
#                                  |--veth-- pod      (HP_NET.1.2; route via HP_NET.1.1)
#                                  |--veth-- upstream (HP_NET.2.2; route via HP_NET.2.1)
#
# hostNetwork: the proxy listens in the node namespace on HP_NET.0.1:80.
# hostPort: the proxy listens in the pod namespace on HP_NET.1.2:80 and the node DNATs
# HP_NET.0.1:80 to it, as the CNI portmap plugin does (a CNI-HOSTPORT-DNAT chain jumped to
# from PREROUTING, one rule per hostPort). The nat table exists in both placements (a
# kube-proxy node always has one), so conntrack runs in both; only the DNAT rule differs.

HP_PREFIX=${HP_PREFIX:-rgxhp}
HP_NET=${HP_NET:-10.231}

hp_namespaces() { echo "$HP_PREFIX-client $HP_PREFIX-node $HP_PREFIX-pod $HP_PREFIX-up"; }

# Fails (with the reason on stderr) if a namespace of ours exists already, or an address of
# our /16 is in use in the root namespace: someone else's setup, or a run still going.
hp_check_free() {
  local ns existing
  existing=$(ip netns list 2>/dev/null | awk '{print $1}')
  for ns in $(hp_namespaces); do
    if printf '%s\n' "$existing" | grep -qx "$ns"; then
      echo "hostport: network namespace $ns already exists (another run? delete it with: ip netns del $ns)" >&2
      return 1
    fi
  done
  if ip -o addr show 2>/dev/null | grep -q " $HP_NET\."; then
    echo "hostport: addresses in $HP_NET.0.0/16 are already in use on this host; set HP_NET to a free /16" >&2
    return 1
  fi
  if ip -o link show 2>/dev/null | grep -q ": $HP_PREFIX-"; then
    echo "hostport: links named $HP_PREFIX-* already exist; set HP_PREFIX" >&2
    return 1
  fi
}

# Removes everything hp_setup made; safe to call twice, or after a partial setup.
hp_teardown() {
  local ns
  for ns in $(hp_namespaces); do
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
      ip netns del "$ns" || true
    fi
  done
}

hp_in() { local ns=$1; shift; ip netns exec "$HP_PREFIX-$ns" "$@"; }

hp_setup() {
  local p=$HP_PREFIX n=$HP_NET ns
  for ns in client node pod up; do
    ip netns add "$p-$ns"
    ip -n "$p-$ns" link set lo up
  done
  # node <-> client, node <-> pod, node <-> upstream: one veth pair each.
  ip link add "$p-c" netns "$p-client" type veth peer name "$p-nc" netns "$p-node"
  ip link add "$p-p" netns "$p-pod" type veth peer name "$p-np" netns "$p-node"
  ip link add "$p-u" netns "$p-up" type veth peer name "$p-nu" netns "$p-node"
  ip -n "$p-client" addr add "$n.0.2/24" dev "$p-c"
  ip -n "$p-node" addr add "$n.0.1/24" dev "$p-nc"
  ip -n "$p-pod" addr add "$n.1.2/24" dev "$p-p"
  ip -n "$p-node" addr add "$n.1.1/24" dev "$p-np"
  ip -n "$p-up" addr add "$n.2.2/24" dev "$p-u"
  ip -n "$p-node" addr add "$n.2.1/24" dev "$p-nu"
  for l in "client $p-c" "node $p-nc" "node $p-np" "node $p-nu" "pod $p-p" "up $p-u"; do
    set -- $l
    ip -n "$p-$1" link set "$2" up
  done
  ip -n "$p-client" route add default via "$n.0.1"
  ip -n "$p-pod" route add default via "$n.1.1"
  ip -n "$p-up" route add default via "$n.2.1"
  hp_in node sysctl -qw net.ipv4.ip_forward=1
  # The client opens tens of thousands of connections: reuse TIME_WAIT ports.
  hp_in client sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
  # The portmap plugin's chain, present in both placements (conntrack on, as on any node).
  hp_in node iptables -t nat -N CNI-HOSTPORT-DNAT
  hp_in node iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
}

# hostPort on: HP_NET.0.1:80 -> pod:80, as portmap writes it (DNAT in its per-container chain).
hp_hostport_on() {
  hp_in node iptables -t nat -N CNI-DN-ringress 2>/dev/null || true
  hp_in node iptables -t nat -F CNI-DN-ringress
  hp_in node iptables -t nat -A CNI-DN-ringress -p tcp --dport 80 -j DNAT --to-destination "$HP_NET.1.2:80"
  hp_in node iptables -t nat -C CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j CNI-DN-ringress 2>/dev/null ||
    hp_in node iptables -t nat -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j CNI-DN-ringress
}

hp_hostport_off() {
  hp_in node iptables -t nat -D CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j CNI-DN-ringress 2>/dev/null || true
}

# Conntrack entries in the node namespace now.
hp_conntrack() { hp_in node cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0; }
hp_conntrack_flush() { hp_in node conntrack -F >/dev/null 2>&1 || true; }

# Softirq time of all CPUs so far, in clock ticks (/proc/stat's 7th cpu field).
hp_softirq_ticks() { awk '/^cpu / {print $8}' "${HP_PROC_STAT:-/proc/stat}"; }

# "rps p99_us requests errors" from wrk --latency output on stdin.
hp_parse_wrk() {
  awk 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    /Requests\/sec/ {rps=$2} / 99%/ {p99=us($2)} /requests in/ {reqs=$1}
    /Non-2xx/ {e+=$NF} /Socket errors/ {gsub(",", ""); e+=$4+$6+$8+$10}
    END {printf "%s %s %s %d\n", rps, p99, reqs, e}'
}

# "achieved_rps p50_us p99_us p999_us errors" from oha --output-format json on stdin: non-2xx
# responses and failed requests.
hp_parse_oha() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
rps = d["summary"]["requestsPerSec"]
p = d.get("latencyPercentiles", {})
p50, p99, p999 = ((p.get(k) or 0) * 1e6 for k in ("p50", "p99", "p99.9"))
codes = d.get("statusCodeDistribution", {})
# Requests still in flight when the run ends ("aborted due to deadline") are not errors.
errs = d.get("errorDistribution", {})
bad = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(v for k, v in errs.items() if "deadline" not in k)
print("%.0f %.0f %.0f %.0f %d" % (rps, p50, p99, p999, bad))'
}
