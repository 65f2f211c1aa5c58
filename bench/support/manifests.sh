#!/usr/bin/env bash
# The manifests every bench serves: host bench.local -> Service up -> one endpoint,
# ${UPSTREAM_IP:-127.0.0.1}:$1 (the bench's upstream). With $2, ringress writes its access log there.
port=$1
log=${2:-}
ip=${UPSTREAM_IP:-127.0.0.1}
cat <<EOC
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench}
spec:
  ingressClassName: ringress
  rules:
  - host: bench.local
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: up}
spec: {ports: [{name: http, port: 80, targetPort: $port}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-1, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
endpoints: [{addresses: ["$ip"]}]
ports: [{name: http, port: $port}]
EOC
# Per-route features (ringress only; compare.sh's route-* modes): a canary taking 20% by
# weight (its Service is the same endpoint), cookie affinity, and limits that never trip.
cat <<EOC
---
apiVersion: v1
kind: Service
metadata: {name: up-canary}
spec: {ports: [{name: http, port: 80, targetPort: $port}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-canary-1, labels: {kubernetes.io/service-name: up-canary}}
addressType: IPv4
endpoints: [{addresses: ["$ip"]}]
ports: [{name: http, port: $port}]
EOC
feature() { # name host annotations (flow map entries) service
cat <<EOC
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: $1, annotations: {$3}}
spec:
  ingressClassName: ringress
  rules:
  - host: $2
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ${4:-up}, port: {number: 80}}}}
EOC
}
feature canary-main canary.local 'x: y'
feature canary canary.local 'nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "20"' up-canary
feature affinity affinity.local 'nginx.ingress.kubernetes.io/affinity: cookie'
feature limit limit.local 'nginx.ingress.kubernetes.io/limit-rps: "1000000", nginx.ingress.kubernetes.io/limit-connections: "100000"'
# Keep-alive connections are not recycled during a run (nginx's keepalive_requests 1000000
# in compare.sh; HAProxy has no such limit).
cat <<EOC
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ringress, namespace: ringress}
data:
  keep-alive-requests: "1000000"
EOC
[ -n "$log" ] && echo "  access-log-path: \"$log\""
# Extra ConfigMap lines (compare.sh turns gzip on): "  key: \"value\"" each.
[ -n "${EXTRA_CONFIG:-}" ] && printf '%s\n' "$EXTRA_CONFIG"
true
