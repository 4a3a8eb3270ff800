// What the tests of a gateway (our nvmf_tgt attaching other targets with bdev_nvme) share:
// the listen address of a target on loopback, the configuration of a target exporting one
// namespace there, the attach of one path that reconnects every second for ever, and a
// target's own count of the writes a bdev completed.

import type { ChildTarget } from './child-target.ts';

/** A TCP listen_address on 127.0.0.1 (SPDK's field names). */
export function tcpListener(port: string): Record<string, string> {
  return { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: port };
}

/**
 * The configuration of a target that makes `bdevs` and exports namespace 1 (`namespace`:
 * bdev_name and the rest of nvmf_subsystem_add_ns' namespace) of subsystem `nqn` (`subsystem`:
 * further nvmf_create_subsystem parameters; any host allowed) on 127.0.0.1 at each of `ports`.
 */
export function exporterConfig(o: {
  bdevs: unknown[];
  nqn: string;
  subsystem?: Record<string, unknown>;
  namespace: Record<string, unknown>;
  ports: string[];
}): unknown {
  return {
    subsystems: [
      { subsystem: 'bdev', config: o.bdevs },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: o.nqn, allow_any_host: true, ...o.subsystem } },
          { method: 'nvmf_subsystem_add_ns', params: { nqn: o.nqn, namespace: { nsid: 1, ...o.namespace } } },
          ...o.ports.map((port) => ({
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: o.nqn, listen_address: tcpListener(port) },
          })),
        ],
      },
    ],
  };
}

/** bdev_nvme_attach_controller of `subnqn` at 127.0.0.1:`port` as Nvme0, reconnecting every second for ever. */
export function reconnectingAttach(
  subnqn: string,
  port: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name: 'Nvme0',
    trtype: 'tcp',
    adrfam: 'ipv4',
    traddr: '127.0.0.1',
    trsvcid: port,
    subnqn,
    ctrlr_loss_timeout_sec: -1,
    reconnect_delay_sec: 1,
    ...extra,
  };
}

/** Writes bdev `bdev` of target `t` completed (its bdev_get_iostat): the I/O a gateway sent there. */
export async function bdevWriteOps(t: ChildTarget, bdev: string): Promise<number> {
  const s = await t.call<{ bdevs: Array<{ num_write_ops: number }> }>('bdev_get_iostat', { name: bdev });
  return s.bdevs[0].num_write_ops;
}
