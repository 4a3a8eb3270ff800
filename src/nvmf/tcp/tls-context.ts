// The TLS 1.3 server side of a secure-channel listener (NVMe/TCP TP 8011):
// one SecureContext per poll group: TLS 1.3 only, external PSKs only (no
// certificate), TLS_AES_128_GCM_SHA256, and no session tickets.
//
// - Cipher suites. Node's `pskCallback` is OpenSSL's PSK server callback, and
//   OpenSSL's TLS 1.3 path for that callback binds every PSK to SHA-256 (it
//   builds the PSK's session with TLS_AES_128_GCM_SHA256 whatever the callback
//   returns; ssl/statem/extensions_srvr.c, tls_parse_ctos_psk). With
//   TLS_AES_256_GCM_SHA384 chosen, the PSK no longer matches and the handshake
//   fails; Node exposes no find-session callback that could carry a SHA-384 PSK.
//   So only TLS_AES_128_GCM_SHA256 is offered, and 48-byte (SHA-384) keys are
//   refused when they are configured (nvmf_subsystem_add_host --psk).
// - Session tickets. The Linux host (6.12) drops the connection on a
//   NewSessionTicket ("unhandled TLS record 22"), and OpenSSL sends one after
//   every PSK handshake. Neither SSL_OP_NO_TICKET (TLS 1.3 then sends stateful
//   tickets) nor sessionTimeout stop it; OpenSSL's num_tickets is not exposed by
//   Node. What stops it per context is a ticket key callback that declines to
//   encrypt: OpenSSL then sends no ticket in TLS 1.3. Node has that callback on
//   its SecureContext binding (enableTicketKeyCallback, the answer read from
//   the context's onticketkeycallback: [result, hmac key, aes key, name, iv]).
//   It is not a documented API, so checkNoSessionTickets() proves on a real
//   handshake that no ticket comes, and the listener is refused when one does;
//   the other way is an OpenSSL config with NumTickets = 0, given to node with
//   --openssl-config (docs/security.md).

import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { TlsServerSocketOptions } from './socket.ts';

/** The TLS 1.3 cipher suites a secure-channel listener offers (see above). */
export const TLS_SERVER_CIPHERS = 'TLS_AES_128_GCM_SHA256';

/** Node's SecureContext binding, the part used here (not a documented API). */
interface TicketKeyBinding {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => unknown[];
}

const TICKET_PART = Buffer.alloc(16);

/** Declines every ticket: nothing to encrypt, nothing to decrypt (a result of 0). */
function declineTicket(): unknown[] {
  return [0, TICKET_PART, TICKET_PART, TICKET_PART, TICKET_PART];
}

/** Tell OpenSSL not to issue session tickets from this context; false when Node offers no way. */
function declineSessionTickets(ctx: tls.SecureContext): boolean {
  const binding = (ctx as unknown as { context?: TicketKeyBinding }).context;
  if (typeof binding?.enableTicketKeyCallback !== 'function') return false;
  binding.onticketkeycallback = declineTicket;
  binding.enableTicketKeyCallback();
  return true;
}

/** A server context for secure-channel connections. */
export function createTlsServerContext(): tls.SecureContext {
  const ctx = tls.createSecureContext({
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_SERVER_CIPHERS,
  });
  declineSessionTickets(ctx);
  return ctx;
}

/** Two Duplex ends joined back to back: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (i: number) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        ends[1 - i].push(chunk);
        done();
      },
      final(done) {
        ends[1 - i].push(null);
        done();
      },
    });
  ends.push(make(0), make(1));
  return [ends[0], ends[1]];
}

/**
 * A TLS 1.3 PSK handshake in memory between a server with a context from `createContext` (the
 * listener's by default) and a client, then one byte each way: resolves when it worked and no
 * session ticket came, rejects naming what went wrong otherwise.
 */
export function checkNoSessionTickets(
  createContext: () => tls.SecureContext = createTlsServerContext,
  timeoutMs = 5000,
): Promise<void> {
  const psk = Buffer.alloc(32, 0x5a);
  const identity = 'NVMe0R01 nqn.2014-08.org.nvmexpress:self-check nqn.2014-08.org.nvmexpress:self-check';
  const [a, b] = duplexPair();
  const serverOptions: TlsServerSocketOptions = {
    isServer: true,
    secureContext: createContext(),
    pskCallback: (_socket, id) => (id === identity ? psk : null),
  };
  const server = new tls.TLSSocket(a, serverOptions);
  const client = tls.connect({
    socket: b,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_SERVER_CIPHERS,
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk, identity }),
  });
  let tickets = 0;
  client.on('session', () => tickets++);
  server.on('data', (d: Buffer) => server.write(d));
  return new Promise<void>((resolve, reject) => {
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      client.destroy();
      server.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new Error(`no TLS 1.3 PSK handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    server.on('error', (e) => finish(new Error(`TLS server: ${e.message}`)));
    client.on('error', (e) => finish(new Error(`TLS client: ${e.message}`)));
    client.on('secureConnect', () => client.write('x'));
    // tickets come right after the handshake, before any application data: by the echo they are in
    client.on('data', () =>
      finish(
        tickets === 0
          ? null
          : new Error(
              `this Node.js/OpenSSL sent ${tickets} TLS session ticket(s), which the Linux host cannot take`,
            ),
      ),
    );
  });
}

let readiness: Promise<void> | null = null;

/** checkNoSessionTickets, once per process (Node and its OpenSSL do not change meanwhile). */
export function secureChannelReady(): Promise<void> {
  readiness ??= checkNoSessionTickets();
  return readiness;
}
