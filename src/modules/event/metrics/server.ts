// The observability HTTP server (off unless --metrics-port or metrics_enable):
//   GET /metrics       Prometheus text format (prometheus.ts)
//   GET /              the live dashboard (assets/ of this folder, uPlot from node_modules)
//   GET /events        server-sent events: one dashboard frame a second while someone listens
//   GET /api/frame     the last frame as JSON
// Loopback by default. Every page and script comes from the package: it works offline.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { logger } from '../../../util/log.ts';
import { type DashboardFrame, dashboardFrame } from './dashboard.ts';
import { gatherView, type TargetView } from './gather.ts';
import { TargetMetrics } from './prometheus.ts';

const log = logger('metrics');
const require = createRequire(import.meta.url);

/** Files the dashboard loads: URL path → file and content type. */
const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/': {
    file: () => new URL('./assets/index.html', import.meta.url).pathname,
    type: 'text/html; charset=utf-8',
  },
  '/dashboard.js': {
    file: () => new URL('./assets/dashboard.js', import.meta.url).pathname,
    type: 'text/javascript; charset=utf-8',
  },
  '/dashboard.css': {
    file: () => new URL('./assets/dashboard.css', import.meta.url).pathname,
    type: 'text/css; charset=utf-8',
  },
  '/uplot.js': {
    file: () => require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/uplot.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export interface MetricsServerOptions {
  port: number;
  address: string;
  /** ms between dashboard frames (default 1000) */
  intervalMs?: number;
}

export class MetricsServer {
  readonly address: string;
  port: number;
  private readonly server: http.Server;
  private readonly metrics = new TargetMetrics();
  private readonly clients = new Set<http.ServerResponse>();
  private readonly intervalMs: number;
  private timer: ReturnType<typeof setInterval> | null = null;
  private prev: TargetView | null = null;
  private lastFrame: DashboardFrame | null = null;
  private ticking = false;
  scrapes = 0;

  private constructor(o: MetricsServerOptions) {
    this.address = o.address;
    this.port = o.port;
    this.intervalMs = o.intervalMs ?? 1000;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        log.warn(`${req.method} ${req.url}: ${(e as Error).message}`);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(e as Error).message}\n`);
      });
    });
  }

  /** Listen; rejects (with Node's error) when the address cannot be bound. */
  static async start(o: MetricsServerOptions): Promise<MetricsServer> {
    const s = new MetricsServer(o);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(o.port, o.address, () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    s.port = (s.server.address() as AddressInfo).port;
    log.notice(`metrics and dashboard on http://${s.address}:${s.port}/ (Prometheus: /metrics)`);
    return s;
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      this.scrapes++;
      this.metrics.update(await gatherView());
      const text = await this.metrics.text();
      res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text);
      return;
    }
    if (path === '/events') {
      this.subscribe(res);
      return;
    }
    if (path === '/api/frame') {
      const frame = this.lastFrame ?? (await this.tick());
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(frame));
      return;
    }
    const asset = ASSETS[path === '/index.html' ? '/' : path];
    if (asset === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res
      .writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache' })
      .end(readFileSync(asset.file()));
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0 && this.timer !== null) {
        clearInterval(this.timer);
        this.timer = null;
      }
    });
    if (this.lastFrame !== null) res.write(`data: ${JSON.stringify(this.lastFrame)}\n\n`);
    // frames only while someone watches: an unwatched target does no gathering
    if (this.timer === null) {
      this.timer = setInterval(() => void this.broadcast(), this.intervalMs);
      void this.broadcast();
    }
  }

  private async tick(): Promise<DashboardFrame> {
    const view = await gatherView();
    const frame = dashboardFrame(view, this.prev);
    this.prev = view;
    this.lastFrame = frame;
    return frame;
  }

  private async broadcast(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const data = `data: ${JSON.stringify(await this.tick())}\n\n`;
      for (const c of this.clients) c.write(data);
    } catch (e) {
      log.warn(`dashboard frame: ${(e as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }
}
