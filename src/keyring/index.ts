// Keys for TLS and DH-HMAC-CHAP: the keyring (named key files) and the text
// formats of NVMe secrets. Used by the target (nvmf) and by the host library.
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
