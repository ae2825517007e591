#!/bin/sh
# Writes examples/tls/secret.yaml: the kubernetes.io/tls Secret `demo/secure-demo-tls` with a
# freshly generated self-signed certificate for secure.demo.local (ECDSA P-256, 30 days).
# The key is made on your machine and never checked in (secret.yaml is git-ignored).
# In a cluster, use a real certificate instead:
#   kubectl -n demo create secret tls secure-demo-tls --cert=tls.crt --key=tls.key
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=secure.demo.local" -addext "subjectAltName=DNS:secure.demo.local" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
indent() { sed 's/^/    /' "$1"; }
{
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: secure-demo-tls"
    echo "  namespace: demo"
    echo "type: kubernetes.io/tls"
    echo "stringData:"
    echo "  tls.crt: |"
    indent "$tmp/tls.crt"
    echo "  tls.key: |"
    indent "$tmp/tls.key"
} > "$dir/secret.yaml"
echo "wrote $dir/secret.yaml"
