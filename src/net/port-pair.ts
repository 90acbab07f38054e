// A connection's two ports as one number, a Map key that needs no text built per connection, for
// the closed-socket lookups on the agent's hot path. A signed 32-bit integer (local in the upper half):
// V8 keeps it as a small integer, where local × 65,536 + remote would pass 2^31 for every ephemeral
// local port and be a heap number each time.

export function portPairKey(localPort: number, remotePort: number): number {
  return (localPort << 16) | (remotePort & 0xffff);
}
