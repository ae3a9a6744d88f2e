/**
 * NTLMSSP (MS-NLMP): the three message codecs, the structures inside them, and the NTLMv2
 * computations and session security that the server (ntlm-server.ts) and the client
 * (ntlm-client.ts) share. Pure: no I/O, no clock, no randomness.
 *
 * Decoders throw WireError only: WIRE_TRUNCATED / WIRE_BAD_OFFSET from the cursor helpers,
 * AUTH_BAD_TOKEN for values MS-NLMP forbids; all carry STATUS_INVALID_PARAMETER.
 */
import { AuthError, ErrorCode, WireError } from '../errors.js';
import { decodeUtf16, encodeUtf16, Reader, sliceField, Writer } from '../wire/cursor.js';
import { NtStatus } from '../wire/ntstatus.js';
import { constantTimeEqual, hmacMd5, md5, Rc4 } from './crypto.js';

/** MS-NLMP 2.2.1: every message starts with "NTLMSSP\0". */
export const NTLMSSP_SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

export const NtlmMessageType = { NEGOTIATE: 1, CHALLENGE: 2, AUTHENTICATE: 3 } as const;

/** MS-NLMP 2.2.2.5 NEGOTIATE flags. */
export const NegotiateFlags = {
  NTLMSSP_NEGOTIATE_UNICODE: 0x00000001,
  NTLM_NEGOTIATE_OEM: 0x00000002,
  NTLMSSP_REQUEST_TARGET: 0x00000004,
  NTLMSSP_NEGOTIATE_SIGN: 0x00000010,
  NTLMSSP_NEGOTIATE_SEAL: 0x00000020,
  NTLMSSP_NEGOTIATE_DATAGRAM: 0x00000040,
  NTLMSSP_NEGOTIATE_LM_KEY: 0x00000080,
  NTLMSSP_NEGOTIATE_NTLM: 0x00000200,
  NTLMSSP_ANONYMOUS: 0x00000800,
  NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED: 0x00001000,
  NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED: 0x00002000,
  NTLMSSP_NEGOTIATE_ALWAYS_SIGN: 0x00008000,
  NTLMSSP_TARGET_TYPE_DOMAIN: 0x00010000,
  NTLMSSP_TARGET_TYPE_SERVER: 0x00020000,
  NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY: 0x00080000,
  NTLMSSP_NEGOTIATE_IDENTIFY: 0x00100000,
  NTLMSSP_REQUEST_NON_NT_SESSION_KEY: 0x00400000,
  NTLMSSP_NEGOTIATE_TARGET_INFO: 0x00800000,
  NTLMSSP_NEGOTIATE_VERSION: 0x02000000,
  NTLMSSP_NEGOTIATE_128: 0x20000000,
  NTLMSSP_NEGOTIATE_KEY_EXCH: 0x40000000,
  NTLMSSP_NEGOTIATE_56: 0x80000000,
} as const;
const F = NegotiateFlags;

/** MS-NLMP 2.2.2.1 AvId. */
export const AvId = {
  MsvAvEOL: 0x0000,
  MsvAvNbComputerName: 0x0001,
  MsvAvNbDomainName: 0x0002,
  MsvAvDnsComputerName: 0x0003,
  MsvAvDnsDomainName: 0x0004,
  MsvAvDnsTreeName: 0x0005,
  MsvAvFlags: 0x0006,
  MsvAvTimestamp: 0x0007,
  MsvAvSingleHost: 0x0008,
  MsvAvTargetName: 0x0009,
  MsvAvChannelBindings: 0x000a,
} as const;

/** MS-NLMP 2.2.2.1 MsvAvFlags bits. */
export const MsvAvFlags = {
  ACCOUNT_AUTHENTICATION_CONSTRAINED: 0x1,
  /** The AUTHENTICATE message carries a MIC. */
  MIC_PRESENT: 0x2,
  UNTRUSTED_SPN_SOURCE: 0x4,
} as const;

/** MS-NLMP 2.2.2.1 AV_PAIR. */
export interface AvPair {
  AvId: number;
  Value: Buffer;
}

/** MS-NLMP 2.2.2.10 VERSION (Reserved, 3 bytes, is written as zeros). */
export interface NtlmVersion {
  ProductMajorVersion: number;
  ProductMinorVersion: number;
  ProductBuild: number;
  /** NTLMSSP_REVISION_W2K3 = 0x0F. */
  NTLMRevisionCurrent: number;
}
export const NTLMSSP_REVISION_W2K3 = 0x0f;

/** The VERSION the DSR sends when the peer asks for one (it is for debugging only). */
export const DSR_NTLM_VERSION: NtlmVersion = {
  ProductMajorVersion: 10,
  ProductMinorVersion: 0,
  ProductBuild: 0,
  NTLMRevisionCurrent: NTLMSSP_REVISION_W2K3,
};

/** MS-NLMP 2.2.1.1 NEGOTIATE_MESSAGE. DomainName and Workstation are OEM bytes. */
export interface NegotiateMessage {
  NegotiateFlags: number;
  DomainName: Buffer;
  Workstation: Buffer;
  /** Present when the fixed part has room for it (payload at 40 or later). */
  Version?: NtlmVersion;
}

/** MS-NLMP 2.2.1.2 CHALLENGE_MESSAGE. TargetInfo is the raw AV_PAIR list (decodeAvPairs). */
export interface ChallengeMessage {
  NegotiateFlags: number;
  TargetName: string;
  /** 8 bytes. */
  ServerChallenge: Buffer;
  TargetInfo: Buffer;
  Version?: NtlmVersion;
}

/** MS-NLMP 2.2.1.3 AUTHENTICATE_MESSAGE. */
export interface AuthenticateMessage {
  NegotiateFlags: number;
  LmChallengeResponse: Buffer;
  NtChallengeResponse: Buffer;
  DomainName: string;
  UserName: string;
  Workstation: string;
  EncryptedRandomSessionKey: Buffer;
  Version?: NtlmVersion;
  /** 16 bytes at offset 72, present when the payload starts at 88 or later. */
  MIC?: Buffer;
}

/** MS-NLMP 2.2.2.7 NTLMv2_CLIENT_CHALLENGE (the "temp" of 3.3.2). */
export interface NtlmV2ClientChallenge {
  RespType: number;
  HiRespType: number;
  /** FILETIME. */
  TimeStamp: bigint;
  /** 8 bytes. */
  ChallengeFromClient: Buffer;
  AvPairs: AvPair[];
  /** Whatever follows MsvAvEOL (clients pad with zeros); kept so re-encoding is exact. */
  Trailer: Buffer;
}

/** MS-NLMP 2.2.2.9.1 NTLMSSP_MESSAGE_SIGNATURE with extended session security. */
export interface MessageSignature {
  Version: number;
  /** 8 bytes. */
  Checksum: Buffer;
  SeqNum: number;
}

/** The offset of the MIC in an AUTHENTICATE message, and the payload start that makes room for it. */
export const MIC_OFFSET = 72;
const AUTH_FIXED_WITH_MIC = MIC_OFFSET + 16;

/** Decodes with `decode`, turning a WireError into AuthError(AUTH_BAD_TOKEN, STATUS_INVALID_PARAMETER) for the engines. */
export function decodeToken<I, T>(decode: (input: I) => T, input: I, what: string): T {
  try {
    return decode(input);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    throw new AuthError(ErrorCode.AUTH_BAD_TOKEN, `malformed ${what}: ${e.message}`, NtStatus.STATUS_INVALID_PARAMETER, { cause: e });
  }
}

function bad(what: string): WireError {
  return new WireError(ErrorCode.AUTH_BAD_TOKEN, what, NtStatus.STATUS_INVALID_PARAMETER);
}

// --- helpers shared by the three message codecs -------------------------------------------

interface FieldRef {
  len: number;
  offset: number;
}

/** Reads a Len / MaxLen / BufferOffset triple (MaxLen is ignored, MS-NLMP 2.2.1). */
function readField(r: Reader, what: string): FieldRef {
  const len = r.u16(`${what}Len`);
  r.u16(`${what}MaxLen`);
  return { len, offset: r.u32(`${what}BufferOffset`) };
}

/** Where the payload starts: the lowest offset of a non-empty field, or the end of the message. */
function payloadStart(msg: Buffer, fields: FieldRef[]): number {
  return fields.reduce((min, f) => (f.len > 0 ? Math.min(min, f.offset) : min), msg.length);
}

function readHeader(msg: Buffer, type: number, what: string): Reader {
  const r = new Reader(msg);
  const sig = r.bytes(8, `${what} Signature`);
  if (!sig.equals(NTLMSSP_SIGNATURE)) throw bad(`${what}: Signature is not NTLMSSP`);
  const t = r.u32(`${what} MessageType`);
  if (t !== type) throw bad(`${what}: MessageType is ${t}, expected ${type}`);
  return r;
}

function readVersion(msg: Buffer, at: number): NtlmVersion {
  const r = new Reader(msg, at, at + 8);
  const v = { ProductMajorVersion: r.u8(), ProductMinorVersion: r.u8(), ProductBuild: r.u16() };
  r.skip(3, 'VERSION Reserved');
  return { ...v, NTLMRevisionCurrent: r.u8() };
}

function writeVersion(w: Writer, v: NtlmVersion | undefined): void {
  if (!v) return void w.zeros(8);
  w.u8(v.ProductMajorVersion).u8(v.ProductMinorVersion).u16(v.ProductBuild).zeros(3).u8(v.NTLMRevisionCurrent);
}

/** Strings follow the negotiated character set: UTF-16LE with UNICODE, else OEM (read as latin1, byte for byte). */
function decodeText(b: Buffer, flags: number): string {
  return flags & F.NTLMSSP_NEGOTIATE_UNICODE ? decodeUtf16(b) : b.toString('latin1');
}
function encodeText(s: string, flags: number): Buffer {
  return flags & F.NTLMSSP_NEGOTIATE_UNICODE ? encodeUtf16(s) : Buffer.from(s, 'latin1');
}

/**
 * Completes a message whose fixed part is in `w`, with one zeroed 8-byte Len/MaxLen/Offset
 * descriptor per payload at `holes`: pads the fixed part to `fixedLen`, then appends the
 * payloads in order and fills in their descriptors (an empty one points where it would be).
 */
function finishMessage(w: Writer, holes: number[], payloads: Buffer[], fixedLen: number): Buffer {
  w.padTo(fixedLen, 'NTLM fixed part');
  payloads.forEach((p, i) => {
    if (p.length > 0xffff) throw new WireError(ErrorCode.WIRE_ENCODE, `NTLM payload of ${p.length} bytes`);
    const at = holes[i]!;
    w.setU16(at, p.length).setU16(at + 2, p.length).setU32(at + 4, w.pos);
    w.bytes(p);
  });
  return w.finish();
}

function startMessage(type: number): Writer {
  return new Writer(256).bytes(NTLMSSP_SIGNATURE).u32(type);
}

// --- NEGOTIATE ------------------------------------------------------------------------------

export function decodeNegotiateMessage(msg: Buffer): NegotiateMessage {
  const r = readHeader(msg, NtlmMessageType.NEGOTIATE, 'NTLM NEGOTIATE');
  const NegotiateFlags = r.u32('NegotiateFlags');
  const domain = readField(r, 'DomainName');
  const ws = readField(r, 'Workstation');
  const start = payloadStart(msg, [domain, ws]);
  const m: NegotiateMessage = {
    NegotiateFlags,
    DomainName: Buffer.from(sliceField(msg, domain.offset, domain.len, 'NEGOTIATE DomainName', 32)),
    Workstation: Buffer.from(sliceField(msg, ws.offset, ws.len, 'NEGOTIATE Workstation', 32)),
  };
  if (start >= 40) m.Version = readVersion(msg, 32);
  return m;
}

export function encodeNegotiateMessage(m: NegotiateMessage): Buffer {
  const w = startMessage(NtlmMessageType.NEGOTIATE).u32(m.NegotiateFlags);
  const holes = [w.pos, w.pos + 8];
  w.zeros(16);
  if (m.Version) writeVersion(w, m.Version);
  return finishMessage(w, holes, [m.DomainName, m.Workstation], m.Version ? 40 : 32);
}

// --- CHALLENGE ------------------------------------------------------------------------------

export function decodeChallengeMessage(msg: Buffer): ChallengeMessage {
  const r = readHeader(msg, NtlmMessageType.CHALLENGE, 'NTLM CHALLENGE');
  const target = readField(r, 'TargetName');
  const NegotiateFlags = r.u32('NegotiateFlags');
  const ServerChallenge = r.copy(8, 'ServerChallenge');
  r.skip(8, 'Reserved');
  const info = readField(r, 'TargetInfo');
  const m: ChallengeMessage = {
    NegotiateFlags,
    TargetName: decodeText(sliceField(msg, target.offset, target.len, 'CHALLENGE TargetName', 48), NegotiateFlags),
    ServerChallenge,
    TargetInfo: Buffer.from(sliceField(msg, info.offset, info.len, 'CHALLENGE TargetInfo', 48)),
  };
  if (payloadStart(msg, [target, info]) >= 56) m.Version = readVersion(msg, 48);
  return m;
}

export function encodeChallengeMessage(m: ChallengeMessage): Buffer {
  if (m.ServerChallenge.length !== 8) throw new WireError(ErrorCode.WIRE_ENCODE, 'ServerChallenge must be 8 bytes');
  const w = startMessage(NtlmMessageType.CHALLENGE);
  const holes = [w.pos];
  w.zeros(8).u32(m.NegotiateFlags).bytes(m.ServerChallenge).zeros(8);
  holes.push(w.pos);
  w.zeros(8);
  if (m.Version) writeVersion(w, m.Version);
  return finishMessage(w, holes, [encodeText(m.TargetName, m.NegotiateFlags), m.TargetInfo], m.Version ? 56 : 48);
}

// --- AUTHENTICATE ---------------------------------------------------------------------------

/** The AUTHENTICATE field descriptors in the order of the fixed part. */
const AUTH_FIELDS = ['LmChallengeResponse', 'NtChallengeResponse', 'DomainName', 'UserName', 'Workstation', 'EncryptedRandomSessionKey'];

export function decodeAuthenticateMessage(msg: Buffer): AuthenticateMessage {
  const r = readHeader(msg, NtlmMessageType.AUTHENTICATE, 'NTLM AUTHENTICATE');
  const fields = AUTH_FIELDS.map((n) => readField(r, n));
  const NegotiateFlags = r.u32('NegotiateFlags');
  const get = (i: number) => sliceField(msg, fields[i]!.offset, fields[i]!.len, `AUTHENTICATE ${AUTH_FIELDS[i]}`, 64);
  const m: AuthenticateMessage = {
    NegotiateFlags,
    LmChallengeResponse: Buffer.from(get(0)),
    NtChallengeResponse: Buffer.from(get(1)),
    DomainName: decodeText(get(2), NegotiateFlags),
    UserName: decodeText(get(3), NegotiateFlags),
    Workstation: decodeText(get(4), NegotiateFlags),
    EncryptedRandomSessionKey: Buffer.from(get(5)),
  };
  const start = payloadStart(msg, fields);
  if (start >= MIC_OFFSET) m.Version = readVersion(msg, 64);
  if (start >= AUTH_FIXED_WITH_MIC) m.MIC = Buffer.from(msg.subarray(MIC_OFFSET, AUTH_FIXED_WITH_MIC));
  return m;
}

export function encodeAuthenticateMessage(m: AuthenticateMessage): Buffer {
  if (m.MIC && m.MIC.length !== 16) throw new WireError(ErrorCode.WIRE_ENCODE, 'MIC must be 16 bytes');
  const w = startMessage(NtlmMessageType.AUTHENTICATE);
  const holes = [0, 1, 2, 3, 4, 5].map((i) => w.pos + 8 * i);
  w.zeros(48).u32(m.NegotiateFlags);
  if (m.Version || m.MIC) writeVersion(w, m.Version);
  if (m.MIC) w.bytes(m.MIC);
  const text = (s: string) => encodeText(s, m.NegotiateFlags);
  // Payload order as Windows sends it: names first, then responses and the key.
  const order = [2, 3, 4, 0, 1, 5];
  const values = [
    m.LmChallengeResponse,
    m.NtChallengeResponse,
    text(m.DomainName),
    text(m.UserName),
    text(m.Workstation),
    m.EncryptedRandomSessionKey,
  ];
  return finishMessage(w, order.map((i) => holes[i]!), order.map((i) => values[i]!), m.MIC ? AUTH_FIXED_WITH_MIC : m.Version ? 72 : 64);
}

/** The AUTHENTICATE message as the MIC covers it: the MIC field zeroed (MS-NLMP 3.1.5.1.2). */
export function withZeroMic(auth: Buffer): Buffer {
  const copy = Buffer.from(auth);
  copy.fill(0, MIC_OFFSET, AUTH_FIXED_WITH_MIC);
  return copy;
}

// --- AV_PAIR lists, NTLMv2 client challenge, message signature ---------------------------

function readAvPairs(r: Reader): AvPair[] {
  const pairs: AvPair[] = [];
  for (;;) {
    const id = r.u16('AvId');
    const len = r.u16('AvLen');
    const value = r.copy(len, 'AV_PAIR Value');
    if (id === AvId.MsvAvEOL) return pairs;
    pairs.push({ AvId: id, Value: value });
  }
}

/** Decodes an AV_PAIR list up to its MsvAvEOL (required); what follows it is ignored. */
export function decodeAvPairs(buf: Buffer): AvPair[] {
  return readAvPairs(new Reader(buf));
}

/** Encodes pairs then MsvAvEOL (pairs must not contain an EOL of their own). */
export function encodeAvPairs(pairs: AvPair[]): Buffer {
  const w = new Writer(128);
  for (const p of pairs) {
    if (p.AvId === AvId.MsvAvEOL || p.Value.length > 0xffff) {
      throw new WireError(ErrorCode.WIRE_ENCODE, `AV_PAIR ${p.AvId} cannot be encoded`);
    }
    w.u16(p.AvId).u16(p.Value.length).bytes(p.Value);
  }
  return w.u16(AvId.MsvAvEOL).u16(0).finish();
}

export function avString(id: number, s: string): AvPair {
  return { AvId: id, Value: encodeUtf16(s) };
}

export function findAvPair(pairs: AvPair[], id: number): Buffer | undefined {
  return pairs.find((p) => p.AvId === id)?.Value;
}

/** MsvAvFlags of a list, 0 when absent. */
export function avFlags(pairs: AvPair[]): number {
  const v = findAvPair(pairs, AvId.MsvAvFlags);
  if (v === undefined) return 0;
  if (v.length !== 4) throw bad(`MsvAvFlags of ${v.length} bytes`);
  return v.readUInt32LE(0);
}

export function avU32(id: number, value: number): AvPair {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return { AvId: id, Value: b };
}

export function avTimestamp(filetime: bigint): AvPair {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(filetime);
  return { AvId: AvId.MsvAvTimestamp, Value: b };
}

/** Minimum NtChallengeResponse of NTLMv2: NTProofStr, the 28-byte client challenge header and an EOL. */
export const NTLMV2_RESPONSE_MIN = 16 + 28 + 4;

export function decodeNtlmV2ClientChallenge(buf: Buffer): NtlmV2ClientChallenge {
  const r = new Reader(buf);
  const RespType = r.u8('RespType');
  const HiRespType = r.u8('HiRespType');
  if (RespType !== 1 || HiRespType !== 1) throw bad(`NTLMv2_CLIENT_CHALLENGE RespType ${RespType}/${HiRespType}, expected 1/1`);
  r.skip(6, 'Reserved1/Reserved2');
  const TimeStamp = r.u64('TimeStamp');
  const ChallengeFromClient = r.copy(8, 'ChallengeFromClient');
  r.skip(4, 'Reserved3');
  const AvPairs = readAvPairs(r);
  return { RespType, HiRespType, TimeStamp, ChallengeFromClient, AvPairs, Trailer: r.copy(r.remaining) };
}

export function encodeNtlmV2ClientChallenge(c: NtlmV2ClientChallenge): Buffer {
  if (c.ChallengeFromClient.length !== 8) throw new WireError(ErrorCode.WIRE_ENCODE, 'ChallengeFromClient must be 8 bytes');
  const w = new Writer(128).u8(c.RespType).u8(c.HiRespType).zeros(6).u64(c.TimeStamp).bytes(c.ChallengeFromClient).zeros(4);
  return w.bytes(encodeAvPairs(c.AvPairs)).bytes(c.Trailer).finish();
}

export function decodeMessageSignature(buf: Buffer): MessageSignature {
  if (buf.length !== 16) throw bad(`NTLMSSP_MESSAGE_SIGNATURE of ${buf.length} bytes, expected 16`);
  const r = new Reader(buf);
  return { Version: r.u32(), Checksum: r.copy(8), SeqNum: r.u32() };
}

export function encodeMessageSignature(s: MessageSignature): Buffer {
  if (s.Checksum.length !== 8) throw new WireError(ErrorCode.WIRE_ENCODE, 'Checksum must be 8 bytes');
  return new Writer(16).u32(s.Version).bytes(s.Checksum).u32(s.SeqNum).finish();
}

// --- NTLMv2 computations (MS-NLMP 3.3.2) ----------------------------------------------------

/**
 * Upper-cases one UTF-16 unit at a time, as Windows does: a character whose upper case is
 * longer (German sharp s) stays as it is, so the length never changes.
 */
export function upcaseNt(s: string): string {
  let out = '';
  for (const ch of s.split('')) {
    const up = ch.toUpperCase();
    out += up.length === 1 ? up : ch;
  }
  return out;
}

/** NTOWFv2 = HMAC_MD5(NTOWFv1, UNICODE(Uppercase(User) + UserDom)). */
export function ntowfV2(ntHash: Buffer, user: string, domain: string): Buffer {
  return hmacMd5(ntHash, encodeUtf16(upcaseNt(user) + domain));
}

/** NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge || temp). */
export function ntProofStr(responseKeyNT: Buffer, serverChallenge: Buffer, temp: Buffer): Buffer {
  return hmacMd5(responseKeyNT, serverChallenge, temp);
}

/** LMv2 response = HMAC_MD5(ResponseKeyLM, ServerChallenge || ClientChallenge) || ClientChallenge. */
export function lmV2Response(responseKeyLM: Buffer, serverChallenge: Buffer, clientChallenge: Buffer): Buffer {
  return Buffer.concat([hmacMd5(responseKeyLM, serverChallenge, clientChallenge), clientChallenge]);
}

/** SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr); with NTLMv2 it is also the KeyExchangeKey. */
export function sessionBaseKeyV2(responseKeyNT: Buffer, proof: Buffer): Buffer {
  return hmacMd5(responseKeyNT, proof);
}

/** Whether ExportedSessionKey comes from EncryptedRandomSessionKey (MS-NLMP 3.1.5.1.2, 3.2.5.1.2). */
export function usesKeyExchange(flags: number): boolean {
  return (flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH) !== 0 && (flags & (F.NTLMSSP_NEGOTIATE_SIGN | F.NTLMSSP_NEGOTIATE_SEAL)) !== 0;
}

/** MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE || AUTHENTICATE with a zero MIC). */
export function computeMic(exportedSessionKey: Buffer, negotiate: Buffer, challenge: Buffer, authenticateZeroMic: Buffer): Buffer {
  return hmacMd5(exportedSessionKey, negotiate, challenge, authenticateZeroMic);
}

// --- session security (MS-NLMP 3.4) --------------------------------------------------------

export type NtlmRole = 'client' | 'server';

/** Whether NtlmSessionSecurity applies to a session with these flags. */
export function hasSessionSecurity(flags: number): boolean {
  return (flags & F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) !== 0;
}

/** The magic constants of MS-NLMP 3.4.5.2 and 3.4.5.3, NUL included. */
function magic(use: 'signing' | 'sealing', sender: NtlmRole): Buffer {
  const direction = sender === 'client' ? 'client-to-server' : 'server-to-client';
  return Buffer.from(`session key to ${direction} ${use} key magic constant\0`, 'latin1');
}

/** MS-NLMP 3.4.5.2 SIGNKEY with extended session security: the key that signs what `sender` sends. */
export function signKey(exportedSessionKey: Buffer, sender: NtlmRole): Buffer {
  return md5(exportedSessionKey, magic('signing', sender));
}

/** MS-NLMP 3.4.5.3 SEALKEY with extended session security: 128, 56 or 40 bits of the key. */
export function sealKey(exportedSessionKey: Buffer, flags: number, sender: NtlmRole): Buffer {
  const len = flags & F.NTLMSSP_NEGOTIATE_128 ? 16 : flags & F.NTLMSSP_NEGOTIATE_56 ? 7 : 5;
  return md5(exportedSessionKey.subarray(0, len), magic('sealing', sender));
}

/**
 * NTLM session security with extended session security (MS-NLMP 3.4.3, 3.4.4.2): one signing
 * key, RC4 sealing handle and sequence number per direction; sealing and signing share the
 * handle, so the order of calls matters. Only for sessions that negotiated
 * NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY (`hasSessionSecurity`); the older NTLMv1-style
 * signatures are not implemented.
 */
export class NtlmSessionSecurity {
  private readonly out: { key: Buffer; rc4: Rc4; seq: number };
  private readonly in: { key: Buffer; rc4: Rc4; seq: number };
  private readonly keyExch: boolean;

  constructor(exportedSessionKey: Buffer, flags: number, role: NtlmRole) {
    const peer: NtlmRole = role === 'client' ? 'server' : 'client';
    const direction = (sender: NtlmRole) => ({
      key: signKey(exportedSessionKey, sender),
      rc4: new Rc4(sealKey(exportedSessionKey, flags, sender)),
      seq: 0,
    });
    this.out = direction(role);
    this.in = direction(peer);
    this.keyExch = (flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH) !== 0;
  }

  private checksum(d: { key: Buffer; rc4: Rc4; seq: number }, data: Buffer): MessageSignature {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(d.seq);
    const mac = hmacMd5(d.key, seq, data).subarray(0, 8);
    const sig = { Version: 1, Checksum: this.keyExch ? d.rc4.update(mac) : Buffer.from(mac), SeqNum: d.seq };
    d.seq = (d.seq + 1) >>> 0;
    return sig;
  }

  /** The 16-byte signature of the next message this side sends. */
  sign(data: Buffer): Buffer {
    return encodeMessageSignature(this.checksum(this.out, data));
  }

  /** Checks the signature of the next message from the peer (its sequence number advances either way). */
  verify(data: Buffer, signature: Buffer): boolean {
    return this.matches(this.checksum(this.in, data), signature);
  }

  /** GSS_WrapEx (MS-NLMP 3.4.3): the message encrypted, then its signature. */
  seal(data: Buffer): { sealed: Buffer; signature: Buffer } {
    const sealed = this.out.rc4.update(data);
    return { sealed, signature: this.sign(data) };
  }

  /** GSS_UnwrapEx: the plaintext, or undefined when the signature does not verify. */
  unseal(sealed: Buffer, signature: Buffer): Buffer | undefined {
    const data = this.in.rc4.update(sealed);
    return this.verify(data, signature) ? data : undefined;
  }

  private matches(want: MessageSignature, signature: Buffer): boolean {
    if (signature.length !== 16) return false;
    const got = decodeMessageSignature(signature);
    return got.Version === 1 && got.SeqNum === want.SeqNum && constantTimeEqual(got.Checksum, want.Checksum);
  }
}

/** Sign/verify once a logon has produced keys; NtlmServer and NtlmClient set `security` then. */
export class NtlmSigner {
  protected security: NtlmSessionSecurity | undefined;

  /** Whether sign/verify are available: a logon with a key and extended session security. */
  get canSign(): boolean {
    return this.security !== undefined;
  }

  private sessionSecurity(): NtlmSessionSecurity {
    if (!this.security) {
      throw new AuthError(ErrorCode.AUTH_FAILED, 'no NTLM session security on this exchange', NtStatus.STATUS_ACCESS_DENIED);
    }
    return this.security;
  }

  /** NTLMSSP_MESSAGE_SIGNATURE of the next message this side sends (MS-NLMP 3.4.4.2). */
  sign(data: Buffer): Buffer {
    return this.sessionSecurity().sign(data);
  }

  /** Checks the signature of the next message from the peer. */
  verify(data: Buffer, signature: Buffer): boolean {
    return this.sessionSecurity().verify(data, signature);
  }
}
