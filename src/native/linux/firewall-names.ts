// Names shared by the firewall installer (firewall.ts) and its cleanup helper (firewall-cleanup.ts).

export type FirewallBackend = 'nftables' | 'iptables';

/** Every iptables chain of ours starts with this; each agent run adds its own tag, so a restart can
 *  install its chains beside a dead agent's and swap in one transaction (an agent before tags used the
 *  bare names). */
export const CHAIN_PREFIX = 'FLOWTOP-';
/** Our nftables table, in the inet family. */
export const NFT_TABLE = 'flowtop';
