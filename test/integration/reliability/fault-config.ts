// Shared by the fault-* and load-* tests: the configuration their nvmf_tgt
// (a ChildTarget from test/lib) starts from.

import { listenerEntry } from '../../lib/index.ts';

/** A config with one TCP transport and subsystem `nqn` (any host) exporting bdevs as nsid 1.., on `port`. */
export function simpleConfig(
  port: number,
  nqn: string,
  bdevs: Array<{ method: string; params: Record<string, unknown> }>,
  transport: Record<string, unknown> = {},
  /** bdev names exported, in nsid order (default: every bdev in `bdevs`) */
  exported: string[] = bdevs.map((b) => String(b.params.name)),
) {
  return {
    subsystems: [
      { subsystem: 'bdev', config: bdevs },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', min_kato: 1000, ...transport } },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn, allow_any_host: true, serial_number: 'SPDKFAULT001', max_namespaces: 32 },
          },
          ...exported.map((name) => ({
            method: 'nvmf_subsystem_add_ns',
            params: { nqn, namespace: { bdev_name: name } },
          })),
          listenerEntry(nqn, port),
        ],
      },
    ],
  };
}
