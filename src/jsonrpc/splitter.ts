// Finds complete top-level JSON values (objects or arrays) in a byte stream
// without framing, as SPDK's rpc.py sends them: tracks nesting depth, strings
// and escapes, so a request may be split across reads or several may share one.
// Structural characters are ASCII, so scanning bytes is UTF-8 safe.

const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export type SplitError = 'garbage' | 'too_large';

export class JsonStreamSplitter {
  private readonly maxBytes: number;
  private depth = 0;
  private inString = false;
  private escape = false;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private failed: SplitError | null = null;

  constructor(maxBytes = 4 * 1024 * 1024) {
    this.maxBytes = maxBytes;
  }

  /** True while part of a value has been seen but not its end. */
  get midValue(): boolean {
    return this.depth > 0;
  }

  /**
   * Feed the next chunk; calls onValue with each complete value's text in order.
   * Returns an error once the stream is unusable (non-JSON start, value over the limit).
   */
  feed(chunk: Buffer, onValue: (text: string) => void): SplitError | null {
    if (this.failed !== null) return this.failed;
    let start = this.depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.depth === 0) {
        if (isSpace(c)) continue;
        if (c !== OPEN_OBJ && c !== OPEN_ARR) return this.fail('garbage');
        this.depth = 1;
        start = i;
        continue;
      }
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === BACKSLASH) this.escape = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN_OBJ || c === OPEN_ARR) this.depth++;
      else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
        this.depth--;
        if (this.depth === 0) {
          const tail = chunk.subarray(start, i + 1);
          if (this.pendingLength + tail.length > this.maxBytes) return this.fail('too_large');
          const text =
            this.pending.length === 0
              ? tail.toString('utf8')
              : Buffer.concat([...this.pending, tail]).toString('utf8');
          this.pending = [];
          this.pendingLength = 0;
          start = -1;
          onValue(text);
          if (this.failed !== null) return this.failed;
        }
      }
    }
    if (this.depth > 0) {
      const rest = chunk.subarray(start);
      this.pendingLength += rest.length;
      if (this.pendingLength > this.maxBytes) return this.fail('too_large');
      // Copy: the socket may reuse its buffer.
      this.pending.push(Buffer.from(rest));
    }
    return null;
  }

  private fail(e: SplitError): SplitError {
    this.failed = e;
    this.pending = [];
    this.pendingLength = 0;
    return e;
  }
}
