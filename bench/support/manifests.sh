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
true
