// The `nvmf` framework subsystem: registers the TCP and RDMA transports and the
// target io_device in every realm, runs the target's start-up/shutdown state
// machine, owns the nvmf_* RPCs and writes the nvmf section of save_config.
import type { App, ConfigEntry, FrameworkSubsystem } from '../../event/subsystem.ts';
import { NVMF_TGT_DEVICE } from '../../nvmf/messages.ts';
import { NvmfPollGroup } from '../../nvmf/poll-group.ts';
import { rdmaTransportPlugin } from '../../nvmf/rdma/index.ts';
import { getTarget, NvmfTarget, setTarget } from '../../nvmf/target.ts';
import {
  createTcpPollGroup,
  secureChannelReady,
  TCP_DEFAULT_OPTIONS,
  TcpListener,
} from '../../nvmf/tcp/index.ts';
import { registerTransport, type TransportPlugin } from '../../nvmf/transport.ts';
import { ioDeviceRegistered, realmReactor, registerIoDevice } from '../../thread/index.ts';
import { nvmfRpcMethods, subsystemConfigEntries, transportConfigEntry } from './nvmf-methods/index.ts';

export const tcpTransportPlugin: TransportPlugin = {
  name: 'TCP',
  defaults: () => ({ ...TCP_DEFAULT_OPTIONS }),
  createPollGroup: (opts, events) => createTcpPollGroup(opts, events),
  checkSecureChannel: secureChannelReady,
  async listen(addr, _opts, onSocket) {
    const l = new TcpListener(addr, (sock) => onSocket(sock));
    await l.listen();
    return l;
  },
};

let app: App | null = null;

export const nvmfSubsystem: FrameworkSubsystem = {
  name: 'nvmf',
  depends: ['bdev', 'sock', 'keyring'],
  realmInit() {
    registerTransport(tcpTransportPlugin);
    // always registered: without the addon nvmf_create_transport -t RDMA says what is missing
    registerTransport(rdmaTransportPlugin);
    if (realmReactor() === 0 && getTargetOrNull() === null) setTarget(new NvmfTarget());
    if (!ioDeviceRegistered(NVMF_TGT_DEVICE)) {
      registerIoDevice(
        NVMF_TGT_DEVICE,
        () => new NvmfPollGroup(),
        (pg) => pg.destroy(),
        'nvmf_tgt',
      );
    }
  },
  async init(a: App) {
    app = a;
    // the target may already exist: created before init so that startup-state
    // RPCs replayed from --json (nvmf_set_config, ...) have somewhere to land
    const t = getTargetOrNull() ?? new NvmfTarget();
    setTarget(t);
    await t.start(a.reactorCount);
  },
  async fini() {
    try {
      const t = getTarget();
      await t.stop();
    } catch {
      // never started
    }
    setTarget(null);
    app = null;
  },
  writeConfigJson(): ConfigEntry[] {
    let t: NvmfTarget;
    try {
      t = getTarget();
    } catch {
      return [];
    }
    const out: ConfigEntry[] = [
      {
        method: 'nvmf_set_config',
        // cap_css_iocs is ours: written only when on, so a default config stays SPDK's
        params: {
          ...(structuredClone(t.config) as unknown as Record<string, unknown>),
          ...(t.capCssIocs ? { cap_css_iocs: true } : {}),
        },
      },
      { method: 'nvmf_set_max_subsystems', params: { max_subsystems: t.maxSubsystems } },
      { method: 'nvmf_set_crdt', params: { crdt1: t.crdt[0], crdt2: t.crdt[1], crdt3: t.crdt[2] } },
    ];
    for (const opts of t.transports.values()) out.push(transportConfigEntry(opts));
    out.push(...subsystemConfigEntries(t));
    return out;
  },
  rpcMethods: nvmfRpcMethods,
};

function getTargetOrNull(): NvmfTarget | null {
  try {
    return getTarget();
  } catch {
    return null;
  }
}

/** The App the subsystem started with (for the start-up banner). */
export function nvmfApp(): App | null {
  return app;
}
