import { decodeMessage, MalformedMessageError, type MessageName } from '@chit/sdk';
import { HubError } from './hub-error';

/** Decodes the wire message `name` with the SDK's strict codec, or throws MALFORMED naming the first offending field. */
export function decodeWire<N extends MessageName>(name: N, input: unknown) {
  try {
    return decodeMessage(name, input);
  } catch (error) {
    if (error instanceof MalformedMessageError) {
      throw new HubError('MALFORMED', error.shortMessage, { path: error.path });
    }
    throw error;
  }
}
