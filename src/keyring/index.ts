// Keys for TLS and DH-HMAC-CHAP: the keyring (named key files), the text
// formats of NVMe secrets and the NVMe/TCP TLS PSK derivation. Used by the
// target (nvmf) and by the host library.
export {
  type DhchapSecret,
  DhchapSecretHash,
  formatDhchapSecret,
  formatPskInterchange,
  KeyFormatError,
  PskHash,
  type PskInterchange,
  parseDhchapSecret,
  parsePskInterchange,
} from './formats.ts';
export { type KeyInfo, type KeyRef, Keyring, KeyringError, keyring } from './keyring.ts';
export {
  formatPskIdentity,
  type PskIdentity,
  parsePskIdentity,
  pskDigest,
  retainedPsk,
  TLS_CIPHER_SUITE,
  type TlsPsk,
  TlsPskHash,
  tlsPsk,
  tlsPskHashOf,
} from './tls-psk.ts';
