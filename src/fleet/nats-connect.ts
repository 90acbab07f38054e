// Opens a NATS connection from a checked NatsLinkConfig (connect-options.ts).
import { connect, credsAuthenticator, nkeyAuthenticator, usernamePasswordAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { NatsLinkConfig } from './connect-options.js';

export interface ConnectTuning {
  /** Keep retrying the first connect instead of failing (an agent starts before its server). */
  waitOnFirstConnect?: boolean;
  /** -1: forever. */
  maxReconnectAttempts?: number;
  timeoutMs?: number;
  /** The agent's link: a dead link noticed in about 10 s (pings every 5 s), reconnects tried every
   *  0.5 s. Off (the library's defaults, reconnects every second) for the TUI's client: with it, a
   *  client whose cluster node died failed to read the stream again in 2 of 3 runs of
   *  test/fleet/client-cluster.test.ts, 0 of 4 without. */
  eager?: boolean;
}

export function natsConnectionOptions(config: NatsLinkConfig, name: string, tuning: ConnectTuning = {}): NodeConnectionOptions {
  const options: NodeConnectionOptions = {
    servers: config.servers,
    name,
    timeout: tuning.timeoutMs ?? 2000,
    ...(tuning.eager === false ? { reconnectTimeWait: 1_000 } : { reconnectTimeWait: 500, reconnectJitter: 250, pingInterval: 5000, maxPingOut: 2 }),
    maxReconnectAttempts: tuning.maxReconnectAttempts ?? -1,
    waitOnFirstConnect: tuning.waitOnFirstConnect ?? false,
    // Servers a cluster announces are only followed over TLS or when the user allowed plain links:
    // otherwise a plain connection could be moved off loopback by the server's gossip.
    ignoreClusterUpdates: !config.tls && !config.insecure,
  };
  if (config.tls) options.tls = config.ca ? { ca: config.ca } : {};
  if (config.creds) options.authenticator = credsAuthenticator(config.creds);
  else if (config.nkeySeed) options.authenticator = nkeyAuthenticator(config.nkeySeed);
  else if (config.user !== undefined && config.password !== undefined) options.authenticator = usernamePasswordAuthenticator(config.user, config.password);
  return options;
}

export function connectNats(config: NatsLinkConfig, name: string, tuning: ConnectTuning = {}): Promise<NatsConnection> {
  return connect(natsConnectionOptions(config, name, tuning));
}
