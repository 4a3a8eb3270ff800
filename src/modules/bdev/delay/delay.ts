// delay bdev: forwards to its base, then holds each completion for the
// configured average latency (1 in 100 I/Os: the p99 latency). Latencies live
// in a SharedArrayBuffer so bdev_delay_update_latency reaches every realm at once.

import {
  type Bdev,
  type BdevBackend,
  type BdevDesc,
  type BdevDescriptor,
  BdevError,
  type BdevIo,
  BdevIoStatus,
  BdevIoType,
  type BdevModule,
  bdevClose,
  bdevFreeIo,
  bdevModuleDescriptor,
  bdevOpen,
} from '../../../bdev/module.ts';
import { type Poller, registerPoller } from '../../../thread/index.ts';
import {
  abortHeldIo,
  type BaseChannel,
  forwardIo,
  getBaseChannel,
  putBaseChannel,
} from '../stacked/forward.ts';
import { createStacked, deleteStacked } from '../stacked/register.ts';

/** Float64 slots in the shared latency table (microseconds). */
export const LatencySlot = { avg_read: 0, p99_read: 1, avg_write: 2, p99_write: 3 } as const;
export type LatencyType = keyof typeof LatencySlot;

export interface DelayParams {
  latencies: SharedArrayBuffer; // Float64Array(4), µs
}

/** A thread's channel: the base's channel and the I/Os waiting out their delay. */
class DelayChannel {
  readonly base: BaseChannel;
  readonly held: BdevIo[] = [];
  /** active while something is held */
  readonly poller: Poller;
  count = 0;
  constructor(backend: DelayBackend) {
    this.base = getBaseChannel(backend.base);
    this.poller = registerPoller(() => backend.release(this), 0, `delay_${backend.name}`);
    this.poller.pause();
  }
}

function nowUs(): number {
  return performance.now() * 1000;
}

export class DelayBackend implements BdevBackend<DelayChannel> {
  readonly base: BdevDesc;
  readonly lat: Float64Array;
  readonly name: string;
  constructor(desc: BdevDescriptor<DelayParams>) {
    this.name = desc.name;
    this.base = bdevOpen(desc.baseBdevs[0], true, () => {});
    this.lat = new Float64Array(desc.params.latencies);
  }
  supportsIo(type: BdevIoType): boolean {
    return this.base.bdev.supportsIo(type);
  }
  createChannel(): DelayChannel {
    return new DelayChannel(this);
  }
  destroyChannel(ch: DelayChannel): void {
    for (const io of ch.held.splice(0)) io.completeStatus(BdevIoStatus.ABORTED);
    ch.poller.unregister();
    putBaseChannel(ch.base);
  }
  submit(io: BdevIo, ch: DelayChannel): void {
    if (io.type === BdevIoType.RESET) {
      // a reset ends the waiting: held I/Os of this channel complete as aborted
      for (const held of ch.held.splice(0)) held.completeStatus(BdevIoStatus.ABORTED);
      ch.poller.pause();
    }
    io.moduleCtx = ch;
    forwardIo(this.base, ch.base, io, this.onBaseDone);
  }
  private readonly onBaseDone = (child: BdevIo, _ok: boolean, parentArg: unknown): void => {
    const io = parentArg as BdevIo;
    const ch = io.moduleCtx as DelayChannel;
    io.nvmeSct = child.nvmeSct;
    io.nvmeSc = child.nvmeSc;
    const status = child.status;
    bdevFreeIo(child);
    const isRead = io.type === BdevIoType.READ;
    const isWrite = io.type === BdevIoType.WRITE;
    if (!isRead && !isWrite) {
      io.completeStatus(status);
      return;
    }
    const p99 = ++ch.count % 100 === 0;
    const us = isRead
      ? this.lat[p99 ? LatencySlot.p99_read : LatencySlot.avg_read]
      : this.lat[p99 ? LatencySlot.p99_write : LatencySlot.avg_write];
    // park the outcome until the delay has passed (status kept in moduleCtx's place)
    io.moduleStatus = status;
    io.moduleNum = nowUs() + us;
    ch.held.push(io);
    if (ch.held.length === 1) ch.poller.resume();
  };

  /** The channel's poller: complete the held I/Os whose time has come. */
  release(ch: DelayChannel): number {
    const now = nowUs();
    let done = 0;
    let keep = 0;
    const held = ch.held;
    for (let i = 0; i < held.length; i++) {
      const io = held[i];
      if (io.moduleNum <= now) {
        io.completeStatus(io.moduleStatus);
        done++;
      } else held[keep++] = io;
    }
    held.length = keep;
    if (keep === 0) ch.poller.pause();
    return done > 0 ? 1 : 0;
  }

  abort(target: unknown, ch: DelayChannel): boolean {
    return abortHeldIo(ch.held, target);
  }

  destruct(): void {
    bdevClose(this.base);
  }

  dumpInfo(): Record<string, unknown> {
    return {
      delay: {
        name: this.name,
        base_bdev_name: this.base.bdev.name,
        avg_read_latency: this.lat[0],
        p99_read_latency: this.lat[1],
        avg_write_latency: this.lat[2],
        p99_write_latency: this.lat[3],
      },
    };
  }
}

export const delayModule: BdevModule<DelayParams> = {
  name: 'delay',
  createReplica(desc: BdevDescriptor<DelayParams>, _bdev: Bdev): BdevBackend {
    return new DelayBackend(desc);
  },
  writeConfigJson(desc: BdevDescriptor<DelayParams>) {
    const lat = new Float64Array(desc.params.latencies);
    return {
      method: 'bdev_delay_create',
      params: {
        base_bdev_name: desc.baseBdevs[0],
        name: desc.name,
        uuid: desc.uuid,
        avg_read_latency: lat[0],
        p99_read_latency: lat[1],
        avg_write_latency: lat[2],
        p99_write_latency: lat[3],
      },
    };
  },
};

export interface DelayCreateOptions {
  baseBdevName: string;
  name: string;
  uuid?: string;
  avgReadLatency: number;
  p99ReadLatency: number;
  avgWriteLatency: number;
  p99WriteLatency: number;
}

export function createDelayBdev(o: DelayCreateOptions): Promise<string> {
  const latencies = new SharedArrayBuffer(4 * 8);
  const lat = new Float64Array(latencies);
  lat[LatencySlot.avg_read] = o.avgReadLatency;
  lat[LatencySlot.p99_read] = o.p99ReadLatency;
  lat[LatencySlot.avg_write] = o.avgWriteLatency;
  lat[LatencySlot.p99_write] = o.p99WriteLatency;
  return createStacked(delayModule, o.name, o.baseBdevName, 'delay', o.uuid, { latencies });
}

export function deleteDelayBdev(name: string): Promise<void> {
  return deleteStacked(delayModule, name);
}

/** bdev_delay_update_latency: takes effect in every realm at once (shared table). */
export function updateDelayLatency(name: string, type: LatencyType, us: number): void {
  const desc = bdevModuleDescriptor(delayModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `delay bdev ${name} does not exist`);
  if (!(type in LatencySlot))
    throw new BdevError(
      'EINVAL',
      `latency_type ${type} is not one of avg_read, avg_write, p99_read, p99_write`,
    );
  new Float64Array(desc.params.latencies)[LatencySlot[type]] = us;
}
