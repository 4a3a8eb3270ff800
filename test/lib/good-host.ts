// A well-behaved host that keeps doing verified I/O on the target while a
// test throws bad input at it: write a fresh pattern, read it back through
// another queue, compare. Every round must succeed; the test asserts that
// rounds kept completing across the bad input and that one more round works.

import { NvmeController, type NvmeIoQpair } from '../../src/nvme/index.ts';
import { TEST_BLOCK_SIZE, TEST_NQN } from './child-target.ts';
import { pattern } from './pattern.ts';
import { pollUntil } from './wait.ts';

export interface GoodHostOptions {
  port: string;
  subnqn?: string;
  nsid?: number;
  /** first LBA of this host's private region (hosts sharing a namespace use different ones) */
  lbaBase?: number;
  /** blocks per round (default 16) */
  blocks?: number;
  /** rounds cycle through this many slots of the region (default 8) */
  slots?: number;
  hdgst?: boolean;
  ddgst?: boolean;
  /** host NQN (default: the library's) */
  hostnqn?: string;
  /** TLS PSK in the interchange format: connect over a secure channel */
  tlsKey?: string;
}

export interface GoodHostReport {
  rounds: number;
  bytesVerified: number;
  errors: string[];
}

export class GoodHost {
  readonly ctrlr: NvmeController;
  private readonly writer: NvmeIoQpair;
  private readonly reader: NvmeIoQpair;
  private readonly nsid: number;
  private readonly lbaBase: number;
  private readonly blocks: number;
  private readonly slots: number;
  rounds = 0;
  bytesVerified = 0;
  readonly errors: string[] = [];
  private running: Promise<void> | null = null;
  private stopping = false;

  private constructor(ctrlr: NvmeController, writer: NvmeIoQpair, reader: NvmeIoQpair, o: GoodHostOptions) {
    this.ctrlr = ctrlr;
    this.writer = writer;
    this.reader = reader;
    this.nsid = o.nsid ?? 1;
    this.lbaBase = o.lbaBase ?? 0;
    this.blocks = o.blocks ?? 16;
    this.slots = o.slots ?? 8;
  }

  /** Connect a controller with two I/O queues (writes on one, reads on the other). */
  static async connect(o: GoodHostOptions): Promise<GoodHost> {
    const ctrlr = await NvmeController.connect({
      traddr: '127.0.0.1',
      trsvcid: o.port,
      subnqn: o.subnqn ?? TEST_NQN,
      hdgst: o.hdgst,
      ddgst: o.ddgst,
      ...(o.hostnqn !== undefined ? { hostnqn: o.hostnqn } : {}),
      ...(o.tlsKey !== undefined ? { tlsKey: o.tlsKey } : {}),
    });
    try {
      await ctrlr.setNumQueues(2);
      const writer = await ctrlr.createIoQpair(32);
      const reader = await ctrlr.createIoQpair(32);
      return new GoodHost(ctrlr, writer, reader, o);
    } catch (e) {
      await ctrlr.disconnect().catch(() => {});
      throw e;
    }
  }

  /** One verified round: write a new pattern to the next slot, read it back on the other queue. */
  async round(): Promise<void> {
    const n = this.rounds;
    const lba = this.lbaBase + (n % this.slots) * this.blocks;
    const len = this.blocks * TEST_BLOCK_SIZE;
    const data = pattern(len, (n * 7919 + this.lbaBase) | 0);
    await this.writer.writeAsync(this.nsid, lba, this.blocks, data);
    const back = Buffer.alloc(len);
    await this.reader.readAsync(this.nsid, lba, this.blocks, back);
    if (!back.equals(data)) throw new Error(`round ${n}: LBA ${lba} read back different data`);
    this.rounds++;
    this.bytesVerified += len;
  }

  /** Keep doing rounds in the background until stop(); errors are recorded, not thrown. */
  start(): void {
    if (this.running !== null) return;
    this.stopping = false;
    this.running = (async () => {
      while (!this.stopping) {
        try {
          await this.round();
        } catch (e) {
          this.errors.push(String((e as Error)?.message ?? e));
          return;
        }
        // pause between rounds: the bad-input side shares this event loop, and the machine
        // running the tests is shared too (a few hundred verified rounds a second is plenty)
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  }

  /** Wait (bounded) until `n` rounds have completed in total; false on timeout or a failed round. */
  async waitRounds(n: number, timeoutMs = 20_000): Promise<boolean> {
    await pollUntil(() => this.rounds >= n || this.errors.length > 0, { timeoutMs, intervalMs: 10 });
    return this.rounds >= n;
  }

  /** Stop the background loop; resolves once the current round finished. */
  async stop(): Promise<GoodHostReport> {
    this.stopping = true;
    if (this.running !== null) await this.running;
    this.running = null;
    return { rounds: this.rounds, bytesVerified: this.bytesVerified, errors: [...this.errors] };
  }

  /**
   * Stop, then check the host was unharmed: no failed round, at least `minRounds` rounds
   * since `sinceRounds`, and a fresh round still works. Throws with the reason otherwise.
   */
  async assertHealthy(sinceRounds = 0, minRounds = 1): Promise<GoodHostReport> {
    const r = await this.stop();
    if (r.errors.length > 0) throw new Error(`the well-behaved host failed: ${r.errors.join('; ')}`);
    await this.round();
    if (this.rounds - sinceRounds < minRounds + 1) {
      throw new Error(`the well-behaved host completed only ${this.rounds - sinceRounds - 1} rounds`);
    }
    return { rounds: this.rounds, bytesVerified: this.bytesVerified, errors: [] };
  }

  async close(): Promise<void> {
    await this.stop();
    await this.ctrlr.disconnect().catch(() => {});
  }
}
