#!/usr/bin/env node
// NetOps Gateway as an MCP server, from the official TypeScript SDK over Streamable HTTP.
// Usage: node mcp_demo.mjs [MCP_URL] [HOST_TO_RESOLVE] [DOMAIN]   (a token: NETOPS_TOKEN in the environment)
// Prints one JSON document with what each call returned; exits non-zero if a call misbehaved.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url = 'http://127.0.0.1:7005/mcp', host = 'localhost', domain = 'localhost'] = process.argv.slice(2);
const token = process.env.NETOPS_TOKEN;

async function main() {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
  });
  const client = new Client({ name: 'netops-mcp-demo', version: '1.0.0' });
  await client.connect(transport);
  const out = { server: client.getServerVersion().name };
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  // A tool's structuredContent is its result; the SDK checks it against the tool's outputSchema.
  out.resolve = (await client.callTool({ name: 'resolve', arguments: { host } })).structuredContent;
  out.mx_lookup = (await client.callTool({ name: 'mx_lookup', arguments: { domain } })).structuredContent;
  // An operation's failure is a tool result with isError; the gateway's stable code is in _meta.
  const failed = await client.callTool({ name: 'resolve', arguments: { host: 'no-such-name.example.test' } });
  out.failed = { isError: failed.isError, code: failed._meta['netops/code'], text: failed.content[0].text };
  await transport.terminateSession();
  await client.close();
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`mcp_demo failed: ${err.stack || err}\n`);
  process.exit(1);
});
