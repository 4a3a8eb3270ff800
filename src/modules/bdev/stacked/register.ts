// The control path of a bdev stacked on a base bdev (passthru, delay,
// error): claim the base, register the virtual bdev over it, release the
// claim if registration fails; delete it by name.

import {
  BdevError,
  type BdevModule,
  bdevClaimByName,
  bdevGetRecord,
  bdevModuleDescriptor,
  bdevRegister,
  bdevReleaseClaimByName,
  bdevUnregister,
  newBdevDescriptor,
} from '../../../bdev/module.ts';

export async function createStacked<P extends object>(
  module: BdevModule<P>,
  name: string,
  baseName: string,
  productName: string,
  uuid: string | undefined,
  params: P,
): Promise<string> {
  const base = bdevGetRecord(baseName);
  if (base === undefined) throw new BdevError('ENODEV', `base bdev ${baseName} does not exist`);
  if (bdevGetRecord(name) !== undefined) throw new BdevError('EEXIST', `bdev name ${name} already exists`);
  bdevClaimByName(base.desc.name, `${module.name}:${name}`);
  try {
    await bdevRegister(
      newBdevDescriptor({
        module: module.name,
        name,
        blockSize: base.desc.blockSize,
        numBlocks: base.desc.numBlocks,
        productName,
        writeCache: base.desc.writeCache,
        optimalIoBoundary: base.desc.optimalIoBoundary,
        maxTransferBlocks: base.desc.maxTransferBlocks,
        baseBdevs: [base.desc.name],
        ...(uuid !== undefined ? { uuid } : {}),
        params,
      }),
    );
  } catch (e) {
    bdevReleaseClaimByName(base.desc.name);
    throw e;
  }
  return name;
}

export async function deleteStacked(module: BdevModule, name: string): Promise<void> {
  const desc = bdevModuleDescriptor(module, name);
  if (desc === undefined) throw new BdevError('ENODEV', `${module.name} bdev ${name} does not exist`);
  await bdevUnregister(desc.name);
}
