#!/bin/sh
# NetOps Gateway with nothing but curl: a JSON-RPC call, a batch, and an error.
# Usage: clients/shell/jsonrpc.sh [URL] [HOST_TO_RESOLVE]
set -eu
url=${1:-http://127.0.0.1:7002/}
host=${2:-localhost}

rpc() { curl -sS --fail-with-body -H 'Content-Type: application/json' --data "$1" "$url"; echo; }

echo "# one call: resolve $host"
rpc "{\"jsonrpc\": \"2.0\", \"method\": \"resolve\", \"params\": {\"host\": \"$host\"}, \"id\": 1}"

echo "# a batch: two calls in one request, answered in one response"
rpc "[{\"jsonrpc\": \"2.0\", \"method\": \"resolve\", \"params\": [\"$host\", \"ipv4\"], \"id\": 1},
      {\"jsonrpc\": \"2.0\", \"method\": \"system.methodSignature\", \"params\": [\"tcp_connect\"], \"id\": 2}]"

echo "# an error: data.code holds the stable code"
rpc '{"jsonrpc": "2.0", "method": "tcp_connect", "params": ["10.0.0.1", 80], "id": 3}'
