// The I/O commands of `nvmf`: read, write, compare, write zeroes, flush and
// dataset management, each split into MDTS-sized commands where it moves data.

import { readFileSync, writeFileSync } from 'node:fs';
import type { ParseArgsOptionsConfig } from 'node:util';
import type { NvmeController } from '../../nvme/index.ts';
import { InvalidArgumentError, UsageError } from '../../util/errors.ts';
import { Dsm } from '../../wire/nvme.ts';
import { parseInteger } from './args.ts';
import { type Command, type Context, nsidOption, withController } from './command.ts';

const ioOptions: ParseArgsOptionsConfig = {
  'namespace-id': { type: 'string', short: 'n', default: '1' },
  'start-block': { type: 'string', short: 's', default: '0' },
  'block-count': { type: 'string', short: 'c', default: '0' },
  'data-size': { type: 'string', short: 'z' },
  data: { type: 'string', short: 'd' },
};

const ioHelp: Record<string, string> = {
  'namespace-id': 'namespace ID (default 1)',
  'start-block': 'first LBA (default 0)',
  'block-count': 'number of blocks, 0-based like nvme-cli (default 0: one block)',
  'data-size': 'buffer size in bytes; must hold the blocks',
  data: 'file to read into / write from (default stdout / stdin)',
  fua: 'force unit access',
};

interface IoPlan {
  nsid: number;
  slba: number;
  blocks: number;
  blockSize: number;
  /** largest transfer per command, in blocks (MDTS) */
  maxBlocks: number;
}

/** Decode the I/O options against the namespace and controller (checks -z like nvme-cli). */
async function planIo(ctx: Context, c: NvmeController): Promise<IoPlan> {
  const nsid = nsidOption(ctx.values, 1);
  const slba = parseInteger('start-block', ctx.values['start-block'] as string, 0, Number.MAX_SAFE_INTEGER);
  const blocks = parseInteger('block-count', ctx.values['block-count'] as string, 0, 0xffff) + 1;
  const ns = c.namespaces.get(nsid);
  if (ns === undefined)
    throw new InvalidArgumentError(`namespace ${nsid} is not an active namespace of ${ctx.trid.subnqn}`);
  const blockSize = ns.blockSize;
  const size = blocks * blockSize;
  if (ctx.values['data-size'] !== undefined) {
    const z = parseInteger('data-size', ctx.values['data-size'] as string, 1, 1 << 30);
    if (z < size)
      throw new UsageError(
        `--data-size ${z} is smaller than ${blocks} block(s) of ${blockSize} bytes (${size})`,
      );
  }
  // one command per MDTS-sized piece (at most 1 MiB, to keep each buffer modest)
  const maxBytes = Math.min(c.maxTransferSize, 1 << 20);
  return { nsid, slba, blocks, blockSize, maxBlocks: Math.max(1, Math.floor(maxBytes / blockSize)) };
}

const read: Command = {
  name: 'read',
  summary: 'read blocks to a file (-d) or stdout',
  options: ioOptions,
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf read -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE]',
  async run(ctx) {
    const data = await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const io = await c.createIoQpair(4);
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      await inPieces(p, (lba, n, start, end) => io.readAsync(p.nsid, lba, n, buf.subarray(start, end)));
      return buf;
    });
    if (typeof ctx.values.data === 'string') writeFileSync(ctx.values.data, data);
    else process.stdout.write(data);
    process.stderr.write('read: Success\n');
  },
};

const write: Command = {
  name: 'write',
  summary: 'write blocks from a file (-d) or stdin',
  options: { ...ioOptions, fua: { type: 'boolean', short: 'f', default: false } },
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf write -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE] [-f (FUA)]',
  async run(ctx) {
    const source = typeof ctx.values.data === 'string' ? ctx.values.data : 0; // 0: stdin
    const input = readFileSync(source);
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      // the blocks hold the input, zero-padded (or cut) to whole blocks
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      input.copy(buf, 0, 0, Math.min(input.length, buf.length));
      const io = await c.createIoQpair(4);
      const fua = ctx.values.fua === true;
      await inPieces(p, (lba, n, start, end) => io.writeAsync(p.nsid, lba, n, buf.subarray(start, end), fua));
    });
    process.stderr.write('write: Success\n');
  },
};

/** Run `fn` over the plan in MDTS-sized pieces: (lba, blocks, byte range). */
async function inPieces(
  p: IoPlan,
  fn: (lba: number, blocks: number, start: number, end: number) => Promise<void>,
): Promise<void> {
  for (let done = 0; done < p.blocks; ) {
    const n = Math.min(p.maxBlocks, p.blocks - done);
    await fn(p.slba + done, n, done * p.blockSize, (done + n) * p.blockSize);
    done += n;
  }
}

const compare: Command = {
  name: 'compare',
  summary: 'compare blocks with a file (-d) or stdin',
  options: ioOptions,
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf compare -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1 [-z BYTES] [-d FILE]',
  async run(ctx) {
    const input = readFileSync(typeof ctx.values.data === 'string' ? ctx.values.data : 0);
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const buf = Buffer.alloc(p.blocks * p.blockSize);
      input.copy(buf, 0, 0, Math.min(input.length, buf.length));
      const io = await c.createIoQpair(4);
      await inPieces(p, (lba, n, start, end) => io.compareAsync(p.nsid, lba, n, buf.subarray(start, end)));
    });
    process.stderr.write('compare: Success\n');
  },
};

const writeZeroes: Command = {
  name: 'write-zeroes',
  summary: 'Write Zeroes over a block range',
  options: {
    'namespace-id': { type: 'string', short: 'n', default: '1' },
    'start-block': { type: 'string', short: 's', default: '0' },
    'block-count': { type: 'string', short: 'c', default: '0' },
  },
  optionHelp: ioHelp,
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf write-zeroes -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA -c BLOCKS-1',
  async run(ctx) {
    await withController(ctx.trid, async (c) => {
      const p = await planIo(ctx, c);
      const io = await c.createIoQpair(4);
      // no data moves: one command covers up to 65536 blocks
      await io.writeZeroesAsync(p.nsid, p.slba, p.blocks);
    });
    process.stderr.write('write-zeroes: Success\n');
  },
};

const flush: Command = {
  name: 'flush',
  summary: 'Flush a namespace (volatile write cache to media)',
  options: { 'namespace-id': { type: 'string', short: 'n', default: '1' } },
  optionHelp: { 'namespace-id': 'namespace ID (default 1)' },
  nsidOnN: true,
  help: 'nvmf flush -t tcp -a ADDR -s PORT --nqn SUBNQN -n NSID',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, 1);
    await withController(ctx.trid, async (c) => {
      const io = await c.createIoQpair(4);
      await io.flushAsync(nsid);
    });
    process.stderr.write('flush: Success\n');
  },
};

/** "0,100,200" → numbers (comma-separated, like nvme-cli's list options). */
function numberList(name: string, text: string | undefined, max: number): number[] {
  if (text === undefined) throw new UsageError(`--${name} is required`);
  return text.split(',').map((part) => parseInteger(name, part, 0, max));
}

const dsm: Command = {
  name: 'dsm',
  summary: 'Dataset Management (deallocate with --ad) over block ranges',
  options: {
    'namespace-id': { type: 'string', short: 'n', default: '1' },
    slbs: { type: 'string', short: 's' },
    blocks: { type: 'string', short: 'b' },
    ad: { type: 'boolean', short: 'd', default: false },
    idw: { type: 'boolean', short: 'w', default: false },
    idr: { type: 'boolean', short: 'r', default: false },
  },
  optionHelp: {
    'namespace-id': 'namespace ID (default 1)',
    slbs: 'first LBA of each range, comma-separated',
    blocks: 'blocks in each range, comma-separated (1-based)',
    ad: 'attribute: deallocate',
    idw: 'attribute: integral dataset for write',
    idr: 'attribute: integral dataset for read',
  },
  nsidOnN: true,
  slbaOnS: true,
  help: 'nvmf dsm -t tcp -a ADDR --trsvcid PORT --nqn SUBNQN -n NSID -s SLBA,… -b BLOCKS,… [--ad] [--idw] [--idr]',
  async run(ctx) {
    const nsid = nsidOption(ctx.values, 1);
    const slbs = numberList('slbs', ctx.values.slbs as string | undefined, Number.MAX_SAFE_INTEGER);
    const blocks = numberList('blocks', ctx.values.blocks as string | undefined, 0xffffffff);
    if (slbs.length !== blocks.length)
      throw new UsageError(`--slbs has ${slbs.length} ranges but --blocks has ${blocks.length}`);
    if (slbs.length > Dsm.MAX_RANGES) throw new UsageError(`at most ${Dsm.MAX_RANGES} ranges`);
    const attributes =
      (ctx.values.idr ? Dsm.ATTR_INTEGRAL_READ : 0) |
      (ctx.values.idw ? Dsm.ATTR_INTEGRAL_WRITE : 0) |
      (ctx.values.ad ? Dsm.ATTR_DEALLOCATE : 0);
    const ranges = slbs.map((lba, i): [number, number] => [lba, blocks[i]]);
    await withController(ctx.trid, async (c) => {
      const io = await c.createIoQpair(4);
      await io.dsmAsync(nsid, ranges, attributes);
    });
    process.stderr.write('dsm: Success\n');
  },
};

export const ioCommands: Command[] = [read, write, compare, writeZeroes, flush, dsm];
