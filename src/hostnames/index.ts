// Host names for flows: DNS answers parsed off the wire, an address → name map, reverse lookups.
export { parseDnsMessage, parseDnsTcpPayload } from './dns.js';
export type { DnsMessage, DnsRecord, DnsAddressRecord, DnsCnameRecord } from './dns.js';
export { HostNameMap } from './map.js';
export type { HostNameEntry, HostNameMapOptions, HostNameSource } from './map.js';
export { ReverseLookup } from './reverse.js';
export type { ReverseLookupOptions, ReverseResolver } from './reverse.js';
