#!/usr/bin/env node
// NetOps Gateway from Node.js over JSON-RPC (jayson) and XML-RPC (xmlrpc).
// Usage: node rpc_demo.js [JSONRPC_URL] [XMLRPC_URL] [HOST_TO_RESOLVE]
// Prints one JSON document with what each call returned; exits non-zero if a call misbehaved.
'use strict';
const jayson = require('jayson/promise');
const xmlrpc = require('xmlrpc');

const [jsonUrl = 'http://127.0.0.1:7002/', xmlUrl = 'http://127.0.0.1:7001/RPC2', host = 'localhost'] =
  process.argv.slice(2);

function xmlCall(client, method, params) {
  return new Promise((resolve, reject) => {
    client.methodCall(method, params, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

async function main() {
  const out = {};

  // JSON-RPC 2.0: introspection, one call with named params, a batch, an error.
  const json = jayson.client.http(jsonUrl);
  out.jsonrpc_methods = (await json.request('system.listMethods', [])).result;
  out.jsonrpc_resolve = (await json.request('resolve', { host, family: 'any' })).result;
  const batch = await json.request([
    json.request('resolve', [host], undefined, false),
    json.request('resolve', ['no-such-name.example.test'], undefined, false),
  ]);
  out.jsonrpc_batch = batch.map((r) => (r.error ? { error: r.error.data.code } : { host: r.result.host }));
  const failed = await json.request('tcp_connect', ['10.0.0.1', 80]);
  out.jsonrpc_error = { code: failed.error.code, stable_code: failed.error.data.code };

  // XML-RPC: introspection, one call, system.multicall, a fault.
  const { hostname, port, pathname } = new URL(xmlUrl);
  const xml = xmlrpc.createClient({ host: hostname, port: Number(port), path: pathname });
  out.xmlrpc_signature = await xmlCall(xml, 'system.methodSignature', ['resolve']);
  out.xmlrpc_resolve = await xmlCall(xml, 'resolve', [host]);
  const multi = await xmlCall(xml, 'system.multicall', [[
    { methodName: 'resolve', params: [host] },
    { methodName: 'nope', params: [] },
  ]]);
  out.xmlrpc_multicall = multi.map((r) => (Array.isArray(r) ? { host: r[0].host } : { fault: r.faultCode }));
  try {
    await xmlCall(xml, 'resolve', ['no-such-name.example.test']);
    out.xmlrpc_fault = null;
  } catch (fault) {
    out.xmlrpc_fault = { faultCode: fault.faultCode, faultString: fault.faultString };
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`rpc_demo failed: ${err.stack || err}\n`);
  process.exit(1);
});
