// Shared test helpers: a child nvmf_tgt with its RPC client, a well-behaved host
// doing verified I/O, raw PDUs and raw JSON-RPC, a byte-splitting proxy, test
// data (pattern), bounded waits and the probes that order them, the nvmf CLI.
export * from './child-target.ts';
export * from './gateway.ts';
export * from './good-host.ts';
export * from './nvmf-cli.ts';
export * from './pattern.ts';
export * from './probe.ts';
export * from './raw-pdu.ts';
export * from './raw-rpc.ts';
export * from './slow-proxy.ts';
export * from './tls-target.ts';
export * from './wait.ts';
