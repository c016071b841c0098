#!/bin/sh
# Generate Python and Node.js code for the gateway's IDL with the Apache Thrift compiler.
# Usage: clients/thrift/generate.sh [OUT_DIR]   (default: clients/thrift; gives gen-py/ and gen-nodejs/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
thrift -r --gen py -out "$out" "$here/../../idl/netops.thrift"
mkdir -p "$out/gen-nodejs"
thrift -r --gen js:node -out "$out/gen-nodejs" "$here/../../idl/netops.thrift"
echo "generated $out/netops (Python) and $out/gen-nodejs (Node.js)"
