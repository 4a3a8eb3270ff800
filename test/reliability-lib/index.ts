// Shared helpers for the reliability tests (bad input, faults, load): a child
// nvmf_tgt, a well-behaved host doing verified I/O, raw PDUs and raw JSON-RPC.
export * from './child-target.ts';
export * from './good-host.ts';
export * from './raw-pdu.ts';
export * from './raw-rpc.ts';
export * from './slow-proxy.ts';
