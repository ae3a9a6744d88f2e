/**
 * Every fuzz target of the project in one registry, with its seeds: the codec targets the
 * wire, auth and RPC tests export, plus the SMB2 request path as the server sees it (framing,
 * compound splitting, header, then the command table's validation).
 */
import { WireError } from '../../src/control/errors.js';
import { COMMANDS } from '../../src/control/smb2/dispatch.js';
import { FrameDecoder } from '../../src/control/wire/netbios.js';
import { splitCompound } from '../../src/control/wire/smb2/compound.js';
import { decodeHeader } from '../../src/control/wire/smb2/header.js';
import { fuzzSeeds as authSeeds, fuzzTargets as authTargets } from '../control/auth/fuzz-targets.js';
import { captureNames, capture, fuzzTargets as rpcTargets } from '../control/wire/fuzz-targets-rpc.js';
import * as capturesB from '../control/wire/smb2/captures.js';
import { fuzzTargets as targetsA } from '../control/wire/smb2/fuzz-targets-a.js';
import { fuzzTargets as targetsB } from '../control/wire/smb2/fuzz-targets-b.js';
import { onlyTypedErrors } from '../helpers/wire.js';

export type Target = (data: Buffer) => void;

/** Real SMB2 messages (requests and responses) captured from Samba, as seeds. */
const smb2Messages: Buffer[] = Object.values(capturesB).flatMap((group) => Object.values(group as Record<string, Buffer>));

const serverTargets: Record<string, Target> = {
  /** What a connection does with a frame before any handler runs. */
  'smb2.request-validation': onlyTypedErrors((frame) => {
    for (const msg of splitCompound(frame)) {
      const hdr = decodeHeader(msg);
      try {
        COMMANDS[hdr.Command]?.validate(msg);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }
  }),
  /** The transport framing, fed in chunks split where the first byte says. */
  'netbios.frames': onlyTypedErrors((data) => {
    const d = new FrameDecoder(1 << 16);
    const cut = data.length ? data[0]! % (data.length + 1) : 0;
    d.push(data.subarray(0, cut));
    d.push(data.subarray(cut));
  }),
};

export const targets: Record<string, Target> = { ...targetsA, ...targetsB, ...authTargets, ...rpcTargets, ...serverTargets };

export function seedsFor(name: string): Buffer[] {
  if (name in authSeeds) return authSeeds[name]!;
  if (name.startsWith('dcerpc.') || name.startsWith('rpc.') || name.startsWith('srvsvc.')) return captureNames.map(capture);
  if (name === 'netbios.frames') return smb2Messages.slice(0, 8).map((m) => Buffer.concat([Buffer.from([0, 0, m.length >> 8, m.length & 0xff]), m]));
  return smb2Messages;
}
