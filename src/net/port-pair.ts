// A connection's two ports as one number (local × 65,536 + remote): a Map key that needs no text
// built per connection, for the closed-socket lookups on the agent's hot path.

export function portPairKey(localPort: number, remotePort: number): number {
  return localPort * 65536 + remotePort;
}
