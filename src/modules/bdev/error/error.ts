// error bdev (EE_<base>): forwards to its base unless an injected error
// matches the I/O type. The injection table is a SharedArrayBuffer, so a
// count set by bdev_error_inject_error is consumed across every realm.

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
  bdevModuleDescriptor,
  bdevOpen,
} from '../../../bdev/module.ts';
import {
  abortHeldIo,
  type BaseChannel,
  completeFromChild,
  forwardIo,
  getBaseChannel,
  putBaseChannel,
} from '../stacked/forward.ts';
import { createStacked, deleteStacked } from '../stacked/register.ts';

export const ErrorType = {
  none: 0,
  failure: 1,
  pending: 2,
  corrupt_data: 3,
  nomem: 4,
  nvme_failure: 5,
} as const;
export type ErrorTypeName = Exclude<keyof typeof ErrorType, 'none'>;

// per BdevIoType slot: [errorType, remaining, sct, sc, corruptOffset, corruptValue]
const FIELDS = 6;
const SLOTS = 10;
export function createInjectionTable(): SharedArrayBuffer {
  return new SharedArrayBuffer(FIELDS * SLOTS * 4);
}

export interface Injection {
  ioType: 'clear' | 'read' | 'write' | 'unmap' | 'flush' | 'all';
  errorType: ErrorTypeName;
  num: number;
  nvmeSct: number;
  nvmeSc: number;
  corruptOffset: number;
  corruptValue: number;
}

/** Write an injection into the shared table (any realm; takes effect everywhere). */
export function inject(table: SharedArrayBuffer, inj: Injection): void {
  const t = new Int32Array(table);
  const types: number[] =
    inj.ioType === 'all' || inj.ioType === 'clear'
      ? [1, 2, 3, 4, 5, 6, 7, 8]
      : [
          {
            read: BdevIoType.READ,
            write: BdevIoType.WRITE,
            unmap: BdevIoType.UNMAP,
            flush: BdevIoType.FLUSH,
          }[inj.ioType],
        ];
  for (const ty of types) {
    const o = ty * FIELDS;
    if (inj.ioType === 'clear') {
      for (let i = 0; i < FIELDS; i++) Atomics.store(t, o + i, 0);
      continue;
    }
    Atomics.store(t, o, ErrorType[inj.errorType]);
    Atomics.store(t, o + 2, inj.nvmeSct);
    Atomics.store(t, o + 3, inj.nvmeSc);
    Atomics.store(t, o + 4, inj.corruptOffset);
    Atomics.store(t, o + 5, inj.corruptValue);
    Atomics.store(t, o + 1, inj.num);
  }
}

export interface ErrorParams {
  table: SharedArrayBuffer;
}

interface ErrorChannel {
  base: BaseChannel;
  pending: BdevIo[];
}

export class ErrorBackend implements BdevBackend<ErrorChannel> {
  readonly base: BdevDesc;
  readonly table: Int32Array;
  readonly name: string;
  constructor(desc: BdevDescriptor<ErrorParams>) {
    this.name = desc.name;
    this.base = bdevOpen(desc.baseBdevs[0], true, () => {});
    this.table = new Int32Array(desc.params.table);
  }
  supportsIo(type: BdevIoType): boolean {
    return this.base.bdev.supportsIo(type);
  }
  createChannel(): ErrorChannel {
    return { base: getBaseChannel(this.base), pending: [] };
  }
  destroyChannel(ch: ErrorChannel): void {
    for (const io of ch.pending.splice(0)) io.completeStatus(BdevIoStatus.ABORTED);
    putBaseChannel(ch.base);
  }

  /** Take one injected error of this type, if any is left. */
  private take(type: number): number {
    const o = type * FIELDS;
    const kind = Atomics.load(this.table, o);
    if (kind === ErrorType.none) return 0;
    // consume a count atomically; a count already at 0 means nothing to inject
    for (;;) {
      const left = Atomics.load(this.table, o + 1);
      if (left <= 0) return 0;
      if (Atomics.compareExchange(this.table, o + 1, left, left - 1) === left) return kind;
    }
  }

  submit(io: BdevIo, ch: ErrorChannel): void {
    if (io.type === BdevIoType.RESET) {
      for (const p of ch.pending.splice(0)) p.completeStatus(BdevIoStatus.ABORTED);
    }
    const kind = io.type < SLOTS ? this.take(io.type) : 0;
    const o = io.type * FIELDS;
    switch (kind) {
      case ErrorType.failure:
        io.complete(false);
        return;
      case ErrorType.nomem:
        io.completeStatus(BdevIoStatus.NOMEM);
        return;
      case ErrorType.nvme_failure:
        io.completeNvme(Atomics.load(this.table, o + 2), Atomics.load(this.table, o + 3));
        return;
      case ErrorType.pending:
        ch.pending.push(io);
        return;
      case ErrorType.corrupt_data: {
        // corrupt the data: writes before they go down, reads after they come back
        if (io.type === BdevIoType.WRITE) this.corrupt(io, o);
        else if (io.type === BdevIoType.READ) {
          io.moduleNum = o;
          forwardIo(this.base, ch.base, io, this.corruptAfterRead);
          return;
        }
        break;
      }
    }
    forwardIo(this.base, ch.base, io, completeFromChild);
  }

  private corrupt(io: BdevIo, o: number): void {
    let off = Atomics.load(this.table, o + 4);
    const value = Atomics.load(this.table, o + 5) & 0xff;
    for (const b of io.iov) {
      if (off < b.length) {
        b[off] ^= value === 0 ? 0xff : value;
        return;
      }
      off -= b.length;
    }
  }

  private readonly corruptAfterRead = (child: BdevIo, ok: boolean, parentArg: unknown): void => {
    const io = parentArg as BdevIo;
    if (ok) this.corrupt(io, io.moduleNum);
    completeFromChild(child, ok, io);
  };

  abort(target: unknown, ch: ErrorChannel): boolean {
    return abortHeldIo(ch.pending, target);
  }

  destruct(): void {
    bdevClose(this.base);
  }

  dumpInfo(): Record<string, unknown> {
    return { error_disk: { base_bdev: this.base.bdev.name } };
  }
}

export const errorModule: BdevModule<ErrorParams> = {
  name: 'error',
  createReplica(desc: BdevDescriptor<ErrorParams>, _bdev: Bdev): BdevBackend {
    return new ErrorBackend(desc);
  },
  writeConfigJson(desc: BdevDescriptor<ErrorParams>) {
    return { method: 'bdev_error_create', params: { base_name: desc.baseBdevs[0], uuid: desc.uuid } };
  },
};

export function createErrorBdev(o: { baseName: string; uuid?: string }): Promise<string> {
  return createStacked(errorModule, `EE_${o.baseName}`, o.baseName, 'Error Injection Disk', o.uuid, {
    table: createInjectionTable(),
  });
}

export function deleteErrorBdev(name: string): Promise<void> {
  return deleteStacked(errorModule, name);
}

export function injectError(name: string, inj: Injection): void {
  const desc = bdevModuleDescriptor(errorModule, name);
  if (desc === undefined) throw new BdevError('ENODEV', `error bdev ${name} does not exist`);
  inject(desc.params.table, inj);
}
