// src/kernel/read.ts — one import for the read-back parsers and readers of each tool
// (ipset.ts, iptables.ts, tc.ts). Nothing is defined here.
export * from './ipset.js';
export * from './iptables.js';
export * from './tc.js';
export * from './tc-stats.js';
