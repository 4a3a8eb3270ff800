// DH-HMAC-CHAP (NVMe in-band authentication): the computations the target
// (src/nvmf/auth.ts) and the host library (src/nvme/auth.ts) share, the RFC 7919
// groups and Diffie-Hellman off the calling thread. Message layouts are the
// wire layer's (src/wire/auth.ts); secrets come from src/keyring.
export { type DhKeyPair, deriveDhSecret, dhPeerValueProblem, generateDhKeyPair } from './dh.ts';
export {
  augmentChallenge,
  controllerResponse,
  DHCHAP_DHGROUP_NAMES,
  DHCHAP_DIGEST_NAMES,
  type DhchapResponseInput,
  dhchapHashId,
  dhchapHashLength,
  dhchapHashName,
  dhGroupId,
  dhGroupName,
  hostResponse,
  responsesMatch,
  transformSecret,
} from './dhchap.ts';
export { FFDHE_GENERATOR, type FfdheGroup, ffdheGroup, isFfdheGroup } from './ffdhe.ts';
