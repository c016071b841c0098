#!/usr/bin/env node
// NetOps Gateway from Node.js over gRPC: @grpc/grpc-js with @grpc/proto-loader on idl/netops.proto.
// Usage: node grpc_demo.js [PROTO] [TARGET] [HOST_TO_RESOLVE]   (a token: NETOPS_TOKEN in the environment)
// Prints one JSON document with what each call returned; exits non-zero if a call misbehaved.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [protoFile = path.join(__dirname, '..', '..', 'idl', 'netops.proto'), target = '127.0.0.1:50051',
  host = 'localhost'] = process.argv.slice(2);

// keepCase: fields as the .proto names them (canonical_name), like every other transport's results.
const definition = protoLoader.loadSync(protoFile, { keepCase: true, defaults: true, oneofs: true });
const { NetOps } = grpc.loadPackageDefinition(definition).netops.v1;

function call(client, method, request) {
  const metadata = new grpc.Metadata();
  if (process.env.NETOPS_TOKEN) metadata.set('authorization', `Bearer ${process.env.NETOPS_TOKEN}`);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + 10000 }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

async function main() {
  const client = new NetOps(target, grpc.credentials.createInsecure());
  const out = {};
  out.methods = (await call(client, 'ListMethods', {})).methods;
  out.resolve = await call(client, 'Resolve', { host });
  const multi = await call(client, 'Multicall', {
    calls: [{ resolve: { host } }, { resolve: { host: 'no-such-name.example.test' } }],
  });
  out.multicall = multi.outcomes.map((o) => (o.outcome === 'error' ? { error: o.error.code } : { host: o.resolve.host }));
  try {
    await call(client, 'TcpConnect', { host: '10.0.0.1', port: 80 });
    out.error = null;
  } catch (err) {
    // The status code, and the gateway's own code in the trailing metadata.
    out.error = { status: grpc.status[err.code], code: err.metadata.get('netops-code')[0], details: err.details };
  }
  client.close();
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`grpc_demo failed: ${err.stack || err}\n`);
  process.exit(1);
});
