// passthru bdev: the model virtual bdev. Claims its base and forwards every I/O to it unchanged.

import {
  type Bdev,
  type BdevBackend,
  type BdevDesc,
  type BdevDescriptor,
  type BdevIo,
  type BdevIoType,
  type BdevModule,
  bdevClose,
  bdevOpen,
  zcopyPossible,
} from '../../../bdev/module.ts';
import {
  type BaseChannel,
  completeFromChild,
  forwardIo,
  getBaseChannel,
  putBaseChannel,
} from '../stacked/forward.ts';
import { createStacked, deleteStacked } from '../stacked/register.ts';

export class PassthruBackend implements BdevBackend<BaseChannel> {
  readonly base: BdevDesc;
  readonly name: string;
  constructor(name: string, baseName: string) {
    this.name = name;
    // hot-remove of the base: the registry removes this bdev first, so nothing to do here
    this.base = bdevOpen(baseName, true, () => {});
  }
  supportsIo(type: BdevIoType): boolean {
    return this.base.bdev.supportsIo(type);
  }
  createChannel(): BaseChannel {
    return getBaseChannel(this.base);
  }
  destroyChannel(ch: BaseChannel): void {
    putBaseChannel(ch);
  }
  submit(io: BdevIo, ch: BaseChannel): void {
    forwardIo(this.base, ch, io, completeFromChild);
  }
  zcopyStart(offsetBlocks: number, numBlocks: number): Buffer | null {
    const base = this.base.bdev;
    if (!zcopyPossible(base, offsetBlocks, numBlocks, false)) return null;
    return base.backend.zcopyStart?.(offsetBlocks, numBlocks) ?? null;
  }
  zcopyEnd(offsetBlocks: number, numBlocks: number): void {
    this.base.bdev.backend.zcopyEnd?.(offsetBlocks, numBlocks);
  }
  zcopyStartWrite(offsetBlocks: number, numBlocks: number): Buffer | null {
    const base = this.base.bdev;
    if (!zcopyPossible(base, offsetBlocks, numBlocks, true)) return null;
    return base.backend.zcopyStartWrite?.(offsetBlocks, numBlocks) ?? null;
  }
  zcopyEndWrite(offsetBlocks: number, numBlocks: number, commit: boolean): void {
    this.base.bdev.backend.zcopyEndWrite?.(offsetBlocks, numBlocks, commit);
  }
  destruct(): void {
    bdevClose(this.base);
  }
  dumpInfo(): Record<string, unknown> {
    return { passthru: { name: this.name, base_bdev_name: this.base.bdev.name } };
  }
}

export const passthruModule: BdevModule = {
  name: 'passthru',
  createReplica(desc: BdevDescriptor, _bdev: Bdev): BdevBackend {
    return new PassthruBackend(desc.name, desc.baseBdevs[0]);
  },
  writeConfigJson(desc: BdevDescriptor) {
    return {
      method: 'bdev_passthru_create',
      params: { base_bdev_name: desc.baseBdevs[0], name: desc.name, uuid: desc.uuid },
    };
  },
};

export function createPassthruBdev(o: {
  baseBdevName: string;
  name: string;
  uuid?: string;
}): Promise<string> {
  return createStacked(passthruModule, o.name, o.baseBdevName, 'passthru', o.uuid, {});
}

export function deletePassthruBdev(name: string): Promise<void> {
  return deleteStacked(passthruModule, name);
}
