// Generated from the NetOps Gateway registry by `python -m gateway.idl`. Do not edit.
// Field ids never move: they are pinned in gateway/wire_ids.json.

namespace py netops
namespace java netops
namespace js netops

/** Every failure: code is one of the gateway's stable error codes (invalid_argument, not_found, …). */
exception NetOpsError {
  1: string code,
  2: string message,
}

/** One address of a host. */
struct Address {
  /** ipv4 or ipv6 */
  1: string family,
  2: string address,
}

/** Addresses of a host name. */
struct ResolveResult {
  1: string host,
  /** end of the CNAME chain; empty if unknown */
  2: string canonical_name,
  3: list<Address> addresses,
  4: double elapsed_ms,
}

/** PTR name of an address and whether it resolves back. */
struct ReverseResult {
  1: string address,
  /** PTR name; empty if none */
  2: string hostname,
  /** the hostname resolves back to the address */
  3: bool forward_confirmed,
  4: double elapsed_ms,
}

/** One resource record in presentation form. */
struct Record {
  1: string name,
  2: string type,
  3: i32 ttl,
  /** zone-file presentation form (dnspython to_text) */
  4: string data,
}

/** Answer to a raw DNS query. */
struct QueryResult {
  1: string name,
  2: string rdtype,
  3: list<Record> answers,
  4: string canonical_name,
  5: double elapsed_ms,
}

/** One place mail for the domain goes. */
struct MailExchange {
  1: i32 preference,
  /** as published in the MX record, no trailing dot */
  2: string exchange,
  /** IPv4 first; empty when the exchange has none */
  3: list<string> addresses,
}

/** Where mail for a domain goes (RFC 5321 section 5.1). */
struct MxResult {
  1: string domain,
  2: list<MailExchange> mx,
  /** no MX records: the domain's own address is the implicit MX */
  3: bool implicit,
  /** the domain publishes a null MX (RFC 7505): it accepts no mail */
  4: bool null_mx,
  /** CNAME targets followed from the queried name */
  5: list<string> cname_chain,
  6: double elapsed_ms,
  /** more than 10 MX records: mx holds the 10 most preferred */
  7: bool truncated,
}

/** The server's leaf certificate. */
struct Certificate {
  /** RFC 4514 distinguished name */
  1: string subject,
  /** RFC 4514 distinguished name */
  2: string issuer,
  /** subject alternative names (DNS names and IP addresses) */
  3: list<string> san,
  /** ISO 8601 UTC */
  4: string not_before,
  /** ISO 8601 UTC */
  5: string not_after,
  /** whole days until not_after; negative once expired */
  6: i32 days_remaining,
  /** serial number, hex */
  7: string serial,
  /** SHA-256 fingerprint of the DER certificate, hex */
  8: string sha256,
}

/** The outcome of a TLS handshake: a certificate that fails verification is reported, not raised. */
struct TlsReport {
  1: string host,
  2: i32 port,
  /** SNI sent: server_name, else host unless it is an IP address */
  3: string server_name,
  /** IP address actually connected */
  4: string address,
  /** e.g. TLSv1.3 */
  5: string protocol,
  6: string cipher,
  /** the chain verifies against the trust store and the name matches */
  7: bool verified,
  /** empty when verified; else expired, not yet valid, self-signed, unknown issuer, hostname mismatch… */
  8: string verify_error,
  /** the certificate's names cover server_name (or host) */
  9: bool hostname_match,
  /** The server's leaf certificate. */
  10: Certificate certificate,
  11: double elapsed_ms,
}

/** One redirect followed. */
struct Redirect {
  /** the URL that answered with the redirect */
  1: string url,
  2: i32 status,
  /** the address that answered */
  3: string address,
}

/** Milliseconds per phase of the final request; total_ms covers the whole operation. */
struct Timings {
  1: double dns_ms,
  2: double connect_ms,
  3: double tls_ms,
  /** from request sent to first response byte */
  4: double ttfb_ms,
  5: double total_ms,
}

/** The TLS session of an https fetch; empty strings for http. */
struct TlsSummary {
  1: string protocol,
  2: string cipher,
  3: bool verified,
  4: string subject,
  5: string issuer,
  6: string not_after,
}

/** An HTTP response: status, headers, and the body up to max_bytes. */
struct FetchResult {
  1: string url,
  2: string final_url,
  3: i32 status,
  4: string reason,
  /** e.g. HTTP/1.1 */
  5: string http_version,
  /** lower-case name to value, by name; repeated headers joined with ', '; control characters as \x1b */
  6: map<string, string> headers,
  7: list<Redirect> redirects,
  8: string content_type,
  /** text for textual types that decode in a text charset, else base64 */
  9: string body,
  /** text or base64 */
  10: string body_encoding,
  /** bytes of decoded body returned */
  11: i32 body_bytes,
  /** the decoded body was larger than max_bytes */
  12: bool truncated,
  /** Milliseconds per phase of the final request; total_ms covers the whole operation. */
  13: Timings timings,
  /** IP address of the final hop */
  14: string address,
  /** The TLS session of an https fetch; empty strings for http. */
  15: TlsSummary tls,
  16: double elapsed_ms,
  /** the text charset the body was decoded with; empty when it is base64 (binary, undecodable, or a charset that is unknown or no text encoding, such as bz2 or punycode) */
  17: string charset,
}

/** Whether a TCP connection could be opened. */
struct ConnectResult {
  1: string host,
  2: i32 port,
  /** the address tried last (the one that answered, if any) */
  3: string address,
  4: bool connected,
  /** empty, or why not: connection refused, timeout, … */
  5: string error,
  6: double elapsed_ms,
}

/** Arguments of resolve, for system_multicall. */
struct ResolveArgs {
  /** host name or IP address */
  1: string host,
  /** which address families to return */
  2: string family = "any",
}

/** Arguments of reverse_lookup, for system_multicall. */
struct ReverseLookupArgs {
  /** IPv4 or IPv6 address */
  1: string address,
}

/** Arguments of dns_query, for system_multicall. */
struct DnsQueryArgs {
  /** domain name to query */
  1: string name,
  /** record type: A, AAAA, CAA, CDNSKEY, CDS, CNAME, DNAME, DNSKEY, DS, HINFO, HTTPS, LOC, MX, NAPTR, NS, NSEC, NSEC3PARAM, OPENPGPKEY, PTR, RRSIG, SMIMEA, SOA, SPF, SRV, SSHFP, SVCB, TLSA, TXT, URI */
  2: string rdtype = "A",
}

/** Arguments of mx_lookup, for system_multicall. */
struct MxLookupArgs {
  /** mail domain */
  1: string domain,
}

/** Arguments of tls_check, for system_multicall. */
struct TlsCheckArgs {
  /** host name or IP address */
  1: string host,
  /** TCP port */
  2: i32 port = 443,
  /** name to send as SNI and check the certificate against; default: host */
  3: string server_name = "",
}

/** Arguments of fetch_url, for system_multicall. */
struct FetchUrlArgs {
  /** http:// or https:// URL */
  1: string url,
  /** GET or HEAD */
  2: string method = "GET",
  /** extra request headers */
  3: map<string, string> headers = {},
  /** most bytes of decoded body to return (at most 10 MiB) */
  4: i32 max_bytes = 1048576,
  /** follow 301, 302, 303, 307 and 308 */
  5: bool follow_redirects = true,
}

/** Arguments of tcp_connect, for system_multicall. */
struct TcpConnectArgs {
  /** host name or IP address */
  1: string host,
  /** TCP port */
  2: i32 port,
}

/** One call of a multicall: set exactly one field, named after the operation. */
union Call {
  1: ResolveArgs resolve,
  2: ReverseLookupArgs reverse_lookup,
  3: DnsQueryArgs dns_query,
  4: MxLookupArgs mx_lookup,
  5: TlsCheckArgs tls_check,
  6: FetchUrlArgs fetch_url,
  7: TcpConnectArgs tcp_connect,
}

/** The outcome of one call: the field of the operation called, or error. */
union Outcome {
  1: ResolveResult resolve,
  2: ReverseResult reverse_lookup,
  3: QueryResult dns_query,
  4: MxResult mx_lookup,
  5: TlsReport tls_check,
  6: FetchResult fetch_url,
  7: ConnectResult tcp_connect,
  99: NetOpsError error,
}

service NetOps {
  /**
   * Look up the addresses of a host name, as the host's resolver (or the configured nameservers) would.
   *
   * Parameters:
   *   host (string): host name or IP address
   *   family (string = "any"): which address families to return
   * Returns: ResolveResult
   * Errors: invalid_argument, not_found, timeout, connection_failed
   */
  ResolveResult resolve(1: string host, 2: string family = "any") throws (1: NetOpsError error),

  /**
   * Find the PTR name of an address and check that the name resolves back to it (forward-confirmed reverse DNS).
   *
   * At most 4 PTR names are looked up forward, at once (one PTR query, then at most 8); the first to resolve back
   * is the hostname.
   *
   * Parameters:
   *   address (string): IPv4 or IPv6 address
   * Returns: ReverseResult
   * Errors: invalid_argument, timeout, connection_failed
   */
  ReverseResult reverse_lookup(1: string address) throws (1: NetOpsError error),

  /**
   * Send one DNS query and return the records of that type (and any CNAMEs followed to reach them).
   *
   * Parameters:
   *   name (string): domain name to query
   *   rdtype (string = "A"): record type: A, AAAA, CAA, CDNSKEY, CDS, CNAME, DNAME, DNSKEY, DS, HINFO, HTTPS, LOC, MX, NAPTR, NS, NSEC, NSEC3PARAM, OPENPGPKEY, PTR, RRSIG, SMIMEA, SOA, SPF, SRV, SSHFP, SVCB, TLSA, TXT, URI
   * Returns: QueryResult
   * Errors: invalid_argument, not_found, timeout, connection_failed
   */
  QueryResult dns_query(1: string name, 2: string rdtype = "A") throws (1: NetOpsError error),

  /**
   * Find where mail for a domain goes (RFC 5321 5.1): MX by preference, else the implicit MX; null MX (RFC 7505).
   *
   * At most the 10 most preferred exchanges are listed and looked up (one MX query, then at most 20, at once).
   *
   * Parameters:
   *   domain (string): mail domain
   * Returns: MxResult
   * Errors: invalid_argument, not_found, timeout, connection_failed
   */
  MxResult mx_lookup(1: string domain) throws (1: NetOpsError error),

  /**
   * Perform a TLS handshake and report the protocol, cipher and certificate, and whether it verifies.
   *
   * Parameters:
   *   host (string): host name or IP address
   *   port (int = 443): TCP port
   *   server_name (string = ""): name to send as SNI and check the certificate against; default: host
   * Returns: TlsReport
   * Errors: invalid_argument, not_found, forbidden_target, timeout, connection_failed
   */
  TlsReport tls_check(1: string host, 2: i32 port = 443, 3: string server_name = "") throws (1: NetOpsError error),

  /**
   * Fetch a URL over HTTP or HTTPS (GET or HEAD), following redirects; a 404 or 500 is a result, not an error.
   *
   * Parameters:
   *   url (string): http:// or https:// URL
   *   method (string = "GET"): GET or HEAD
   *   headers (struct = {}): extra request headers
   *   max_bytes (int = 1048576): most bytes of decoded body to return (at most 10 MiB)
   *   follow_redirects (boolean = true): follow 301, 302, 303, 307 and 308
   * Returns: FetchResult
   * Errors: invalid_argument, not_found, forbidden_target, timeout, connection_failed, too_many_redirects
   */
  FetchResult fetch_url(1: string url, 2: string method = "GET", 3: map<string, string> headers = {}, 4: i32 max_bytes = 1048576, 5: bool follow_redirects = true) throws (1: NetOpsError error),

  /**
   * Open a TCP connection and close it again: refused and timed-out connections are results, not errors.
   *
   * Parameters:
   *   host (string): host name or IP address
   *   port (int): TCP port
   * Returns: ConnectResult
   * Errors: invalid_argument, not_found, forbidden_target, timeout, connection_failed
   */
  ConnectResult tcp_connect(1: string host, 2: i32 port) throws (1: NetOpsError error),

  /** List the names of every method callable on this transport. */
  list<string> system_listMethods() throws (1: NetOpsError error),

  /** Describe a method: what it does, its parameters, its result and its errors. */
  string system_methodHelp(1: string name) throws (1: NetOpsError error),

  /** List a method's signatures: [return type, parameter types…], one per number of arguments it accepts. */
  list<list<string>> system_methodSignature(1: string name) throws (1: NetOpsError error),

  /** Run several calls concurrently; in order, [result] per success or {faultCode, faultString} per failure. */
  list<Outcome> system_multicall(1: list<Call> calls) throws (1: NetOpsError error),
}
