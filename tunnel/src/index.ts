export * from './consumer.js';
export * from './errors.js';
export { isPrivateAddress } from './handshake.js';
export * from './provider.js';
export {
  type ControlMessage,
  type ControlName,
  controlSchemas,
  MAX_LINE,
  type Offer,
  PROTOCOL_VERSION,
  parseControl,
} from './wire.js';
