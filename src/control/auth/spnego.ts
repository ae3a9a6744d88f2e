/**
 * SPNEGO (RFC 4178 with the MS-SPNG extensions) around NTLMSSP, the only mechanism the DSR
 * speaks. The codec is DER via asn1js; `SpnegoServer` runs the server side of SESSION_SETUP,
 * `SpnegoClient` the client side (backends, tests).
 *
 * mechListMIC follows Samba's auth/gensec/spnego.c so that smbclient and Windows accept it:
 * the server checks the client's MIC over the DER of the client's mechTypes when one is sent
 * and then answers accept-completed with its own MIC over the same bytes; a client that sent
 * none gets none. Guest and anonymous logons have no key, so no MIC either way.
 */
import * as asn1js from 'asn1js';
import { AuthError, ErrorCode, errorMessage, WireError } from '../errors.js';
import { NtStatus } from '../wire/ntstatus.js';
import { NtlmClient, type NtlmClientOptions } from './ntlm-client.js';
import { NtlmServer, type AuthResult, type CredentialLookup, type NtlmServerOptions } from './ntlm-server.js';
import { decodeToken, NTLMSSP_SIGNATURE } from './ntlm.js';

export const SPNEGO_OID = '1.3.6.1.5.5.2';
export const NTLMSSP_OID = '1.3.6.1.4.1.311.2.2.10';
/** Other mechanisms clients offer first; the DSR steers them to NTLMSSP. */
export const KRB5_OID = '1.2.840.113554.1.2.2';
export const MS_KRB5_OID = '1.2.840.48018.1.2.2';
export const NEGOEX_OID = '1.3.6.1.4.1.311.2.2.30';

/** The hint Windows and Samba put in the NEGOTIATE response's NegTokenInit2 (MS-SPNG 3.2.5.2). */
export const SPNEGO_HINT_NAME = 'not_defined_in_RFC4178@please_ignore';

/** RFC 4178 4.2.2 negState. */
export const NegState = {
  ACCEPT_COMPLETED: 0,
  ACCEPT_INCOMPLETE: 1,
  REJECT: 2,
  REQUEST_MIC: 3,
} as const;

/** RFC 4178 4.2.1 NegTokenInit, with MS-SPNG 2.2.1 NegTokenInit2's negHints. reqFlags is skipped. */
export interface NegTokenInit {
  mechTypes: string[];
  /** The DER of mechTypes exactly as received (decoder only): what mechListMIC covers. */
  mechTypesDer?: Buffer;
  mechToken?: Buffer;
  /** MS-SPNG NegHints; when present the token is a NegTokenInit2 and mechListMIC moves to [4]. */
  negHints?: { hintName?: string; hintAddress?: Buffer };
  mechListMIC?: Buffer;
}

/** RFC 4178 4.2.2 NegTokenResp. */
export interface NegTokenResp {
  negState?: number;
  supportedMech?: string;
  responseToken?: Buffer;
  mechListMIC?: Buffer;
}

export type SpnegoToken = { kind: 'init'; init: NegTokenInit } | { kind: 'resp'; resp: NegTokenResp };

/** SESSION_SETUP's SecurityBuffer is at most 64 KiB; asn1js gets limits as well. */
const MAX_TOKEN = 0xffff;
const PARSE_LIMITS = { maxDepth: 16, maxNodes: 512, maxContentLength: MAX_TOKEN, parseEmbedded: false };
const UNIVERSAL = 1;
const APPLICATION = 2;
const CONTEXT = 3;

function bad(what: string): WireError {
  return new WireError(ErrorCode.AUTH_BAD_TOKEN, `SPNEGO: ${what}`, NtStatus.STATUS_INVALID_PARAMETER);
}

type Block = asn1js.BaseBlock;

function tagOf(b: Block): string {
  return `${b.idBlock.tagClass}:${b.idBlock.tagNumber}`;
}

/** The children of a constructed block with the given tag (class, number). */
function children(b: Block, tagClass: number, tagNumber: number, what: string): Block[] {
  if (b.idBlock.tagClass !== tagClass || b.idBlock.tagNumber !== tagNumber || !(b instanceof asn1js.Constructed)) {
    throw bad(`${what} has tag ${tagOf(b)}`);
  }
  return b.valueBlock.value;
}

/** The one element inside an EXPLICIT context tag [n]. */
function explicit(b: Block, what: string): Block {
  const inner = children(b, CONTEXT, b.idBlock.tagNumber, what);
  if (inner.length !== 1) throw bad(`${what} holds ${inner.length} elements`);
  return inner[0]!;
}

/** The [n]-tagged members of a SEQUENCE, each tag at most once and in ascending order. */
function members(seq: Block, what: string): Map<number, Block> {
  const out = new Map<number, Block>();
  let last = -1;
  for (const m of children(seq, UNIVERSAL, 16, what)) {
    const n = m.idBlock.tagNumber;
    if (m.idBlock.tagClass !== CONTEXT || n <= last) throw bad(`${what} member ${tagOf(m)} out of place`);
    last = n;
    out.set(n, explicit(m, `${what} [${n}]`));
  }
  return out;
}

function oid(b: Block, what: string): string {
  if (!(b instanceof asn1js.ObjectIdentifier)) throw bad(`${what} is not an OBJECT IDENTIFIER`);
  return b.getValue();
}

function octets(b: Block, what: string): Buffer {
  if (!(b instanceof asn1js.OctetString)) throw bad(`${what} is not an OCTET STRING`);
  return Buffer.from(b.getValue());
}

function der(b: Block): Buffer {
  return Buffer.from(b.valueBeforeDecodeView);
}

function parseDer(buf: Buffer): Block {
  if (buf.length === 0 || buf.length > MAX_TOKEN) throw bad(`token of ${buf.length} bytes`);
  let parsed: asn1js.FromBerResult;
  try {
    parsed = asn1js.fromBER(buf, PARSE_LIMITS);
  } catch (e) {
    // asn1js reports most errors in-band but is not guaranteed never to throw on garbage.
    throw bad(`undecodable DER (${errorMessage(e)})`);
  }
  if (parsed.offset === -1) throw bad(`undecodable DER (${parsed.result.error})`);
  if (parsed.offset !== buf.length) throw bad(`${buf.length - parsed.offset} bytes after the token`);
  return parsed.result;
}

function decodeInit(seq: Block): NegTokenInit {
  const m = members(seq, 'NegTokenInit');
  const types = m.get(0);
  const init: NegTokenInit = { mechTypes: [] };
  if (types) {
    init.mechTypes = children(types, UNIVERSAL, 16, 'mechTypes').map((t) => oid(t, 'MechType'));
    init.mechTypesDer = der(types);
  }
  const token = m.get(2);
  if (token) init.mechToken = octets(token, 'mechToken');
  // [3] is mechListMIC in RFC 4178 and negHints in MS-SPNG's NegTokenInit2, which moves the MIC to [4].
  const three = m.get(3);
  if (three instanceof asn1js.OctetString) init.mechListMIC = octets(three, 'mechListMIC');
  else if (three) {
    const hints = members(three, 'negHints');
    const name = hints.get(0);
    const address = hints.get(1);
    init.negHints = {};
    if (name) {
      if (!(name instanceof asn1js.GeneralString)) throw bad('hintName is not a GeneralString');
      init.negHints.hintName = name.getValue();
    }
    if (address) init.negHints.hintAddress = octets(address, 'hintAddress');
  }
  const four = m.get(4);
  if (four) init.mechListMIC = octets(four, 'mechListMIC');
  return init;
}

function decodeResp(seq: Block): NegTokenResp {
  const m = members(seq, 'NegTokenResp');
  const resp: NegTokenResp = {};
  const state = m.get(0);
  if (state) {
    if (!(state instanceof asn1js.Enumerated)) throw bad('negState is not an ENUMERATED');
    const v = state.valueBlock.valueDec;
    if (!Number.isInteger(v) || v < NegState.ACCEPT_COMPLETED || v > NegState.REQUEST_MIC) throw bad(`negState ${v}`);
    resp.negState = v;
  }
  const mech = m.get(1);
  if (mech) resp.supportedMech = oid(mech, 'supportedMech');
  const token = m.get(2);
  if (token) resp.responseToken = octets(token, 'responseToken');
  const mic = m.get(3);
  if (mic) resp.mechListMIC = octets(mic, 'mechListMIC');
  return resp;
}

/** The NegotiationToken CHOICE: [0] NegTokenInit or [1] NegTokenResp. */
function decodeChoice(b: Block): SpnegoToken {
  if (b.idBlock.tagClass === CONTEXT && b.idBlock.tagNumber === 0) return { kind: 'init', init: decodeInit(explicit(b, 'negTokenInit')) };
  if (b.idBlock.tagClass === CONTEXT && b.idBlock.tagNumber === 1) return { kind: 'resp', resp: decodeResp(explicit(b, 'negTokenResp')) };
  throw bad(`NegotiationToken has tag ${tagOf(b)}`);
}

/**
 * Decodes a token: the GSS-API InitialContextToken (RFC 2743 3.1, [APPLICATION 0] with the
 * SPNEGO OID) around a NegotiationToken, or a bare NegotiationToken as later legs send.
 */
export function decodeSpnegoToken(buf: Buffer): SpnegoToken {
  const top = parseDer(buf);
  if (top.idBlock.tagClass !== APPLICATION) return decodeChoice(top);
  const parts = children(top, APPLICATION, 0, 'InitialContextToken');
  if (parts.length !== 2) throw bad(`InitialContextToken holds ${parts.length} elements`);
  const mech = oid(parts[0]!, 'thisMech');
  if (mech !== SPNEGO_OID) throw bad(`thisMech ${mech} is not SPNEGO`);
  return decodeChoice(parts[1]!);
}

const tagged = (n: number, inner: Block) => new asn1js.Constructed({ idBlock: { tagClass: CONTEXT, tagNumber: n }, value: [inner] });
const octetString = (b: Buffer) => new asn1js.OctetString({ valueHex: Uint8Array.from(b) });
const toBuffer = (b: Block) => Buffer.from(b.toBER());

function mechTypeList(oids: string[]): asn1js.Sequence {
  return new asn1js.Sequence({ value: oids.map((o) => new asn1js.ObjectIdentifier({ value: o })) });
}

/** The DER of a MechTypeList, what mechListMIC covers. */
export function encodeMechTypes(oids: string[]): Buffer {
  return toBuffer(mechTypeList(oids));
}

/** A NegTokenInit (or NegTokenInit2 when negHints is set) in its GSS-API wrapper. */
export function encodeNegTokenInit(t: NegTokenInit): Buffer {
  const fields: Block[] = [tagged(0, mechTypeList(t.mechTypes))];
  if (t.mechToken) fields.push(tagged(2, octetString(t.mechToken)));
  if (t.negHints) {
    const hints: Block[] = [];
    if (t.negHints.hintName !== undefined) hints.push(tagged(0, new asn1js.GeneralString({ value: t.negHints.hintName })));
    if (t.negHints.hintAddress) hints.push(tagged(1, octetString(t.negHints.hintAddress)));
    fields.push(tagged(3, new asn1js.Sequence({ value: hints })));
  }
  if (t.mechListMIC) fields.push(tagged(t.negHints ? 4 : 3, octetString(t.mechListMIC)));
  const body = tagged(0, new asn1js.Sequence({ value: fields }));
  const spnego = new asn1js.ObjectIdentifier({ value: SPNEGO_OID });
  return toBuffer(new asn1js.Constructed({ idBlock: { tagClass: APPLICATION, tagNumber: 0 }, value: [spnego, body] }));
}

/** A bare [1] NegTokenResp. */
export function encodeNegTokenResp(t: NegTokenResp): Buffer {
  const fields: Block[] = [];
  if (t.negState !== undefined) fields.push(tagged(0, new asn1js.Enumerated({ value: t.negState })));
  if (t.supportedMech) fields.push(tagged(1, new asn1js.ObjectIdentifier({ value: t.supportedMech })));
  if (t.responseToken) fields.push(tagged(2, octetString(t.responseToken)));
  if (t.mechListMIC) fields.push(tagged(3, octetString(t.mechListMIC)));
  return toBuffer(tagged(1, new asn1js.Sequence({ value: fields })));
}

/** The SMB2 NEGOTIATE response's SecurityBuffer: NegTokenInit2 offering NTLMSSP only (MS-SMB2 3.3.5.4). */
export function spnegoNegotiateToken(): Buffer {
  return encodeNegTokenInit({ mechTypes: [NTLMSSP_OID], negHints: { hintName: SPNEGO_HINT_NAME } });
}

function isRawNtlmssp(token: Buffer): boolean {
  return token.length >= NTLMSSP_SIGNATURE.length && token.subarray(0, NTLMSSP_SIGNATURE.length).equals(NTLMSSP_SIGNATURE);
}

function badToken(what: string): AuthError {
  return new AuthError(ErrorCode.AUTH_BAD_TOKEN, `SPNEGO: ${what}`, NtStatus.STATUS_INVALID_PARAMETER);
}

export type SpnegoStep = { done: false; token: Buffer } | { done: true; token: Buffer; result: AuthResult };

/**
 * The server side of one SESSION_SETUP sequence. Every step either returns the token for
 * the response or throws an AuthError (whose status the response carries); after a throw
 * or a completed logon the instance is spent.
 */
export class SpnegoServer {
  private readonly ntlm: NtlmServer;
  private state: 'start' | 'negotiate' | 'authenticate' | 'done' = 'start';
  /** Raw NTLMSSP without SPNEGO (some clients send that). */
  private raw = false;
  private mechTypesDer: Buffer = Buffer.alloc(0);

  constructor(
    options: NtlmServerOptions,
    private readonly creds: CredentialLookup,
  ) {
    this.ntlm = new NtlmServer(options);
  }

  step(token: Buffer): SpnegoStep {
    if (this.state === 'done') throw badToken('the exchange is already over');
    try {
      return this.advance(token);
    } catch (e) {
      this.state = 'done';
      throw e;
    }
  }

  private advance(token: Buffer): SpnegoStep {
    switch (this.state) {
      case 'start':
        return this.first(token);
      case 'negotiate': {
        const ntlmNegotiate = this.respToken(token).responseToken;
        if (!ntlmNegotiate) throw badToken('no NTLM NEGOTIATE in the NegTokenResp');
        return this.challenge(ntlmNegotiate);
      }
      default:
        return this.last(token);
    }
  }

  private first(token: Buffer): SpnegoStep {
    // An empty first token asks for the server's NegTokenInit, as after an SMB1 negotiate.
    if (token.length === 0) return { done: false, token: spnegoNegotiateToken() };
    if (isRawNtlmssp(token)) {
      this.raw = true;
      this.state = 'authenticate';
      return { done: false, token: this.ntlm.challenge(token) };
    }
    const t = decodeToken(decodeSpnegoToken, token, 'SPNEGO token');
    if (t.kind !== 'init') throw badToken('the first token is not a NegTokenInit');
    if (!t.init.mechTypes.includes(NTLMSSP_OID)) {
      const offered = t.init.mechTypes.join(', ');
      throw new AuthError(ErrorCode.AUTH_FAILED, `SPNEGO: the client offers no NTLMSSP (${offered})`, NtStatus.STATUS_NOT_SUPPORTED);
    }
    this.mechTypesDer = t.init.mechTypesDer ?? Buffer.alloc(0);
    if (t.init.mechTypes[0] === NTLMSSP_OID && t.init.mechToken) return this.challenge(t.init.mechToken);
    // The client preferred another mechanism (Kerberos, NegoEx): name NTLMSSP, send no token,
    // and let it start NTLMSSP in the next leg (RFC 4178 3.2, as Windows does).
    this.state = 'negotiate';
    return { done: false, token: encodeNegTokenResp({ negState: NegState.ACCEPT_INCOMPLETE, supportedMech: NTLMSSP_OID }) };
  }

  private challenge(ntlmNegotiate: Buffer): SpnegoStep {
    const challenge = this.ntlm.challenge(ntlmNegotiate);
    this.state = 'authenticate';
    const token = encodeNegTokenResp({ negState: NegState.ACCEPT_INCOMPLETE, supportedMech: NTLMSSP_OID, responseToken: challenge });
    return { done: false, token };
  }

  private respToken(token: Buffer): NegTokenResp {
    const t = decodeToken(decodeSpnegoToken, token, 'SPNEGO token');
    if (t.kind !== 'resp') throw badToken('expected a NegTokenResp');
    return t.resp;
  }

  private last(token: Buffer): SpnegoStep {
    this.state = 'done';
    if (this.raw) return { done: true, token: Buffer.alloc(0), result: this.ntlm.authenticate(token, this.creds) };
    const resp = this.respToken(token);
    if (!resp.responseToken) throw badToken('no NTLM AUTHENTICATE in the NegTokenResp');
    const result = this.ntlm.authenticate(resp.responseToken, this.creds);
    let mechListMIC: Buffer | undefined;
    if (resp.mechListMIC && this.ntlm.canSign) {
      if (!this.ntlm.verify(this.mechTypesDer, resp.mechListMIC)) {
        const who = JSON.stringify(result.user);
        throw new AuthError(ErrorCode.AUTH_FAILED, `SPNEGO: bad mechListMIC from ${who}`, NtStatus.STATUS_LOGON_FAILURE);
      }
      mechListMIC = this.ntlm.sign(this.mechTypesDer);
    }
    return { done: true, token: encodeNegTokenResp({ negState: NegState.ACCEPT_COMPLETED, mechListMIC }), result };
  }
}

/** The client side: NTLMSSP in SPNEGO, with a mechListMIC (for backends and tests). */
export class SpnegoClient {
  private readonly ntlm: NtlmClient;
  private readonly mechTypesDer = encodeMechTypes([NTLMSSP_OID]);
  private state: 'start' | 'challenge' | 'final' | 'done' = 'start';
  private sessionKey: Buffer = Buffer.alloc(0);

  constructor(options: NtlmClientOptions) {
    this.ntlm = new NtlmClient(options);
  }

  /** The first SESSION_SETUP token: NegTokenInit with NTLMSSP and its NEGOTIATE. */
  initial(): Buffer {
    if (this.state !== 'start') throw badToken('initial() called twice');
    this.state = 'challenge';
    return encodeNegTokenInit({ mechTypes: [NTLMSSP_OID], mechToken: this.ntlm.negotiate() });
  }

  /** Feeds a server token; `done` carries the ExportedSessionKey once the server accepted. */
  step(token: Buffer): { done: false; token: Buffer } | { done: true; sessionKey: Buffer } {
    switch (this.state) {
      case 'challenge': {
        const resp = this.serverResp(token);
        if (resp.supportedMech !== undefined && resp.supportedMech !== NTLMSSP_OID) throw badToken(`server chose ${resp.supportedMech}`);
        if (!resp.responseToken) throw badToken('no NTLM CHALLENGE from the server');
        const auth = this.ntlm.authenticate(resp.responseToken);
        this.sessionKey = auth.sessionKey;
        this.state = 'final';
        const mechListMIC = this.ntlm.canSign ? this.ntlm.sign(this.mechTypesDer) : undefined;
        return { done: false, token: encodeNegTokenResp({ responseToken: auth.token, mechListMIC }) };
      }
      case 'final': {
        this.state = 'done';
        // A server may end with an empty buffer; a MIC it sends must verify.
        if (token.length > 0) {
          const resp = this.serverResp(token);
          if (resp.negState !== NegState.ACCEPT_COMPLETED) throw badToken(`final negState ${resp.negState}`);
          if (resp.mechListMIC && this.ntlm.canSign && !this.ntlm.verify(this.mechTypesDer, resp.mechListMIC)) {
            throw new AuthError(ErrorCode.AUTH_FAILED, 'SPNEGO: the server mechListMIC does not verify', NtStatus.STATUS_LOGON_FAILURE);
          }
        }
        return { done: true, sessionKey: this.sessionKey };
      }
      default:
        throw badToken(`step() in state ${this.state}`);
    }
  }

  private serverResp(token: Buffer): NegTokenResp {
    const t = decodeToken(decodeSpnegoToken, token, 'SPNEGO token');
    if (t.kind !== 'resp') throw badToken('expected a NegTokenResp');
    if (t.resp.negState === NegState.REJECT) {
      throw new AuthError(ErrorCode.AUTH_FAILED, 'SPNEGO: the server rejected the logon', NtStatus.STATUS_LOGON_FAILURE);
    }
    return t.resp;
  }
}
