/**
 * MS-SRVS stubs the DSR answers on \PIPE\srvsvc: NetrShareEnum (opnum 15), NetrShareGetInfo
 * (16) and NetrServerGetInfo (21), in NDR 2.0. The server side decodes requests and encodes
 * responses; the inverse pair exists for tests and tools.
 *
 * Union arms: every arm of SHARE_ENUM_UNION, SHARE_INFO and SERVER_INFO is a pointer. A level
 * the IDL lists but the DSR does not implement is answered with a NULL arm (what a Windows
 * client's stub expects); a level outside the IDL has no arm at all (Samba's [default] arm, the
 * only way a client can send one).
 */
import { ErrorCode, WireError } from '../errors.js';
import { NtStatus } from './ntstatus.js';
import { type NdrFields, NdrReader, type NdrStruct, NdrWriter, readStruct, structWireSize, writeStruct } from './ndr.js';

export const SRVSVC_UUID = '4b324fc8-1670-01d3-1278-5a47bf6ee188';
export const SRVSVC_VERSION: readonly [number, number] = [3, 0];

export const SrvsvcOpnum = {
  NetrShareEnum: 15,
  NetrShareGetInfo: 16,
  NetrServerGetInfo: 21,
} as const;

/** MS-SRVS 2.2.2.4 share types. */
export const ShareType = {
  STYPE_DISKTREE: 0x00000000,
  STYPE_PRINTQ: 0x00000001,
  STYPE_DEVICE: 0x00000002,
  STYPE_IPC: 0x00000003,
  STYPE_TEMPORARY: 0x40000000,
  STYPE_SPECIAL: 0x80000000,
} as const;

/** NET_API_STATUS values (MS-ERREF 2.2, MS-SRVS 3.1.4). */
export const Werror = {
  ERROR_SUCCESS: 0,
  ERROR_ACCESS_DENIED: 5,
  ERROR_INVALID_PARAMETER: 87,
  ERROR_INVALID_LEVEL: 124,
  ERROR_MORE_DATA: 234,
  NERR_NetNameNotFound: 2310,
} as const;

/** MS-SRVS 2.2.2.2: PreferedMaximumLength meaning "everything". */
export const MAX_PREFERRED_LENGTH = 0xffffffff;

/** MS-SRVS 2.2.2.6 sv1xx_platform_id. */
export const PLATFORM_ID_NT = 500;

/** MS-SRVS 2.2.2.7 server types (sv101_type). */
export const SvType = {
  SV_TYPE_WORKSTATION: 0x00000001,
  SV_TYPE_SERVER: 0x00000002,
  SV_TYPE_NT: 0x00001000,
  SV_TYPE_SERVER_NT: 0x00008000,
} as const;

/** MS-SRVS 2.2.4.22 SHARE_INFO_0. */
export const SHARE_INFO_0 = [['shi0_netname', 'wstring']] as const;
/** MS-SRVS 2.2.4.23 SHARE_INFO_1. */
export const SHARE_INFO_1 = [
  ['shi1_netname', 'wstring'],
  ['shi1_type', 'u32'],
  ['shi1_remark', 'wstring'],
] as const;
/** MS-SRVS 2.2.4.24 SHARE_INFO_2. */
export const SHARE_INFO_2 = [
  ['shi2_netname', 'wstring'],
  ['shi2_type', 'u32'],
  ['shi2_remark', 'wstring'],
  ['shi2_permissions', 'u32'],
  ['shi2_max_uses', 'u32'],
  ['shi2_current_uses', 'u32'],
  ['shi2_path', 'wstring'],
  ['shi2_passwd', 'wstring'],
] as const;
/** MS-SRVS 2.2.4.25 SHARE_INFO_501. */
export const SHARE_INFO_501 = [
  ['shi501_netname', 'wstring'],
  ['shi501_type', 'u32'],
  ['shi501_remark', 'wstring'],
  ['shi501_flags', 'u32'],
] as const;
/** MS-SRVS 2.2.4.26 SHARE_INFO_502_I; the security descriptor is [size_is(shi502_reserved)]. */
export const SHARE_INFO_502_I = [
  ['shi502_netname', 'wstring'],
  ['shi502_type', 'u32'],
  ['shi502_remark', 'wstring'],
  ['shi502_permissions', 'u32'],
  ['shi502_max_uses', 'u32'],
  ['shi502_current_uses', 'u32'],
  ['shi502_path', 'wstring'],
  ['shi502_passwd', 'wstring'],
  ['shi502_reserved', 'u32'],
  ['shi502_security_descriptor', 'bytes'],
] as const;
/** MS-SRVS 2.2.4.29 SHARE_INFO_1005. */
export const SHARE_INFO_1005 = [['shi1005_flags', 'u32']] as const;

export type ShareInfo0 = NdrStruct<typeof SHARE_INFO_0>;
export type ShareInfo1 = NdrStruct<typeof SHARE_INFO_1>;
export type ShareInfo2 = NdrStruct<typeof SHARE_INFO_2>;
export type ShareInfo501 = NdrStruct<typeof SHARE_INFO_501>;
export type ShareInfo502 = NdrStruct<typeof SHARE_INFO_502_I>;
export type ShareInfo1005 = NdrStruct<typeof SHARE_INFO_1005>;
export type ShareInfo = ShareInfo0 | ShareInfo1 | ShareInfo2 | ShareInfo501 | ShareInfo502 | ShareInfo1005;

/** MS-SRVS 2.2.4.40 SERVER_INFO_100. */
export const SERVER_INFO_100 = [
  ['sv100_platform_id', 'u32'],
  ['sv100_name', 'wstring'],
] as const;
/** MS-SRVS 2.2.4.41 SERVER_INFO_101. */
export const SERVER_INFO_101 = [
  ['sv101_platform_id', 'u32'],
  ['sv101_name', 'wstring'],
  ['sv101_version_major', 'u32'],
  ['sv101_version_minor', 'u32'],
  ['sv101_type', 'u32'],
  ['sv101_comment', 'wstring'],
] as const;
/** MS-SRVS 2.2.4.42 SERVER_INFO_102. */
export const SERVER_INFO_102 = [
  ['sv102_platform_id', 'u32'],
  ['sv102_name', 'wstring'],
  ['sv102_version_major', 'u32'],
  ['sv102_version_minor', 'u32'],
  ['sv102_type', 'u32'],
  ['sv102_comment', 'wstring'],
  ['sv102_users', 'u32'],
  ['sv102_disc', 'i32'],
  ['sv102_hidden', 'u32'],
  ['sv102_announce', 'u32'],
  ['sv102_anndelta', 'u32'],
  ['sv102_licenses', 'u32'],
  ['sv102_userpath', 'wstring'],
] as const;

export type ServerInfo100 = NdrStruct<typeof SERVER_INFO_100>;
export type ServerInfo101 = NdrStruct<typeof SERVER_INFO_101>;
export type ServerInfo102 = NdrStruct<typeof SERVER_INFO_102>;
export type ServerInfo = ServerInfo100 | ServerInfo101 | ServerInfo102;

/** A union whose arms are all pointers: the structure of each implemented level, the IDL's other arm levels. */
interface PointerUnion {
  name: string;
  implemented: ReadonlyMap<number, NdrFields>;
  otherArms: ReadonlySet<number>;
}

/** MS-SRVS 2.2.3.5 SHARE_ENUM_UNION: each arm points to a SHARE_INFO_n_CONTAINER (2.2.4.32-37). */
const SHARE_ENUM_UNION: PointerUnion = {
  name: 'SHARE_ENUM_UNION',
  implemented: new Map<number, NdrFields>([
    [0, SHARE_INFO_0],
    [1, SHARE_INFO_1],
    [2, SHARE_INFO_2],
    [501, SHARE_INFO_501],
    [502, SHARE_INFO_502_I],
  ]),
  otherArms: new Set([503]),
};

/** MS-SRVS 2.2.3.6 SHARE_INFO. */
const SHARE_INFO_UNION: PointerUnion = {
  name: 'SHARE_INFO',
  implemented: new Map([...SHARE_ENUM_UNION.implemented, [1005, SHARE_INFO_1005]]),
  otherArms: new Set([503, 1004, 1006, 1501]),
};

/** MS-SRVS 2.2.3.7 SERVER_INFO. */
const SERVER_INFO_UNION: PointerUnion = {
  name: 'SERVER_INFO',
  implemented: new Map<number, NdrFields>([
    [100, SERVER_INFO_100],
    [101, SERVER_INFO_101],
    [102, SERVER_INFO_102],
  ]),
  otherArms: new Set([
    103, 502, 503, 599, 1005, 1107, 1010, 1016, 1017, 1018, 1501, 1502, 1503, 1506, 1510, 1511, 1512, 1513, 1514, 1515, 1516, 1518, 1523,
    1528, 1529, 1530, 1533, 1534, 1535, 1536, 1538, 1539, 1540, 1541, 1542, 1543, 1544, 1545, 1546, 1547, 1548, 1549, 1550, 1552, 1553,
    1554, 1555, 1556,
  ]),
};

/** The share levels NetrShareEnum and NetrShareGetInfo implement. */
export const SHARE_ENUM_LEVELS: ReadonlySet<number> = new Set(SHARE_ENUM_UNION.implemented.keys());
export const SHARE_INFO_LEVELS: ReadonlySet<number> = new Set(SHARE_INFO_UNION.implemented.keys());
export const SERVER_INFO_LEVELS: ReadonlySet<number> = new Set(SERVER_INFO_UNION.implemented.keys());

/** The structure of an implemented level, for callers that size entries (PreferedMaximumLength). */
export function shareInfoFields(level: number): NdrFields | undefined {
  return SHARE_INFO_UNION.implemented.get(level);
}

function hasArm(u: PointerUnion, level: number): boolean {
  return u.implemented.has(level) || u.otherArms.has(level);
}

function encodeError(what: string): WireError {
  return new WireError(ErrorCode.WIRE_ENCODE, what);
}

function decodeError(what: string): WireError {
  return new WireError(ErrorCode.WIRE_BAD_FIELD, what, NtStatus.STATUS_INVALID_PARAMETER);
}

/** MS-SRVS 2.2.4.32-37 SHARE_INFO_n_CONTAINER: EntriesRead, then [size_is(EntriesRead)] Buffer. */
export interface ShareInfoContainer {
  EntriesRead: number;
  Buffer: ShareInfo[] | null;
}

/** MS-SRVS 2.2.4.38 SHARE_ENUM_STRUCT. */
export interface ShareEnumStruct {
  Level: number;
  /** The SHARE_ENUM_UNION arm: null for a NULL pointer or a level without an arm. */
  ShareInfo: ShareInfoContainer | null;
}

/** MS-SRVS 3.1.4.8 NetrShareEnum [in] parameters. */
export interface NetrShareEnumRequest {
  ServerName: string | null;
  InfoStruct: ShareEnumStruct;
  PreferedMaximumLength: number;
  ResumeHandle: number | null;
}

/** MS-SRVS 3.1.4.8 NetrShareEnum [out] parameters and return value. */
export interface NetrShareEnumResponse {
  InfoStruct: ShareEnumStruct;
  TotalEntries: number;
  ResumeHandle: number | null;
  ReturnValue: number;
}

/** MS-SRVS 3.1.4.10 NetrShareGetInfo [in] parameters. */
export interface NetrShareGetInfoRequest {
  ServerName: string | null;
  NetName: string;
  Level: number;
}

/** MS-SRVS 3.1.4.10 NetrShareGetInfo [out] parameters: the SHARE_INFO union and the return value. */
export interface NetrShareGetInfoResponse {
  /** The union discriminant (the request's Level). */
  Level: number;
  InfoStruct: ShareInfo | null;
  ReturnValue: number;
}

/** MS-SRVS 3.1.4.17 NetrServerGetInfo [in] parameters. */
export interface NetrServerGetInfoRequest {
  ServerName: string | null;
  Level: number;
}

/** MS-SRVS 3.1.4.17 NetrServerGetInfo [out] parameters: the SERVER_INFO union and the return value. */
export interface NetrServerGetInfoResponse {
  Level: number;
  InfoStruct: ServerInfo | null;
  ReturnValue: number;
}

/** A top-level [unique] pointer parameter: its referent id, then its pointee right away. */
function writeUnique<T>(w: NdrWriter, v: T | null, pointee: (v: T) => void): void {
  w.pointer(v, pointee).flush();
}

function readUnique<T>(r: NdrReader, what: string, pointee: () => T): T | null {
  let v: T | null = null;
  r.pointer(what, () => {
    v = pointee();
  });
  r.flush();
  return v;
}

/** SRVSVC_HANDLE ServerName: [in, string, unique] wchar_t*. */
function writeServerName(w: NdrWriter, s: string | null): void {
  writeUnique(w, s, (v) => w.wstring(v));
}

function readServerName(r: NdrReader): string | null {
  return readUnique(r, 'ServerName', () => r.wstring('ServerName'));
}

/** A non-encapsulated union's discriminant, which must repeat the switch_is value. */
function readDiscriminant(r: NdrReader, u: PointerUnion, level: number): void {
  const tag = r.u32(`${u.name} discriminant`);
  if (tag !== level) throw decodeError(`${u.name} discriminant ${tag} differs from Level ${level}`);
}

function levelFields(u: PointerUnion, level: number, what: string): NdrFields {
  const fields = u.implemented.get(level);
  if (fields === undefined) throw encodeError(`${what}: level ${level} of ${u.name} has no structure here; it must be NULL`);
  return fields;
}

function writeShareEnumStruct(w: NdrWriter, s: ShareEnumStruct): void {
  w.u32(s.Level).u32(s.Level);
  if (!hasArm(SHARE_ENUM_UNION, s.Level)) {
    if (s.ShareInfo !== null) throw encodeError(`SHARE_ENUM_UNION has no arm for level ${s.Level}`);
  } else {
    w.pointer(s.ShareInfo, (c) => {
      w.u32(c.EntriesRead);
      w.pointer(c.Buffer, (entries) => {
        if (entries.length !== c.EntriesRead) throw encodeError(`EntriesRead ${c.EntriesRead} but ${entries.length} entries`);
        const fields = levelFields(SHARE_ENUM_UNION, s.Level, 'SHARE_INFO container');
        w.conformantArray(entries, (e) => writeStruct(w, fields, e));
      });
    });
  }
  w.flush();
}

function readShareEnumStruct(r: NdrReader): ShareEnumStruct {
  const Level = r.u32('Level');
  readDiscriminant(r, SHARE_ENUM_UNION, Level);
  const s: ShareEnumStruct = { Level, ShareInfo: null };
  if (hasArm(SHARE_ENUM_UNION, Level)) {
    r.pointer('ShareInfo', () => {
      const c: ShareInfoContainer = { EntriesRead: r.u32('EntriesRead'), Buffer: null };
      s.ShareInfo = c;
      r.pointer('Buffer', () => {
        const fields = SHARE_ENUM_UNION.implemented.get(Level);
        if (fields === undefined) throw decodeError(`no entries can be decoded for share level ${Level}`);
        const entries = r.conformantArray('Buffer', structWireSize(fields), () => readStruct(r, fields));
        if (entries.length !== c.EntriesRead) throw decodeError(`Buffer holds ${entries.length} entries, EntriesRead says ${c.EntriesRead}`);
        c.Buffer = entries as ShareInfo[];
      });
    });
  }
  r.flush();
  return s;
}

/** A [switch_is(Level)] pointer union as an [out] parameter: discriminant, then the arm if the IDL has one. */
function writeInfoUnion(w: NdrWriter, u: PointerUnion, level: number, info: NdrStruct<NdrFields> | null): void {
  w.u32(level);
  if (!hasArm(u, level)) {
    if (info !== null) throw encodeError(`${u.name} has no arm for level ${level}`);
  } else {
    w.pointer(info, (v) => writeStruct(w, levelFields(u, level, u.name), v));
  }
  w.flush();
}

function readInfoUnion(r: NdrReader, u: PointerUnion): { Level: number; info: NdrStruct<NdrFields> | null } {
  const Level = r.u32(`${u.name} discriminant`);
  let info: NdrStruct<NdrFields> | null = null;
  if (hasArm(u, Level)) {
    r.pointer(u.name, () => {
      const fields = u.implemented.get(Level);
      if (fields === undefined) throw decodeError(`no structure can be decoded for ${u.name} level ${Level}`);
      info = readStruct(r, fields);
    });
  }
  r.flush();
  return { Level, info };
}

export function encodeNetrShareEnumRequest(req: NetrShareEnumRequest): Buffer {
  const w = new NdrWriter();
  writeServerName(w, req.ServerName);
  writeShareEnumStruct(w, req.InfoStruct);
  w.u32(req.PreferedMaximumLength);
  writeUnique(w, req.ResumeHandle, (v) => w.u32(v));
  return w.finish();
}

export function decodeNetrShareEnumRequest(stub: Buffer): NetrShareEnumRequest {
  const r = new NdrReader(stub);
  return {
    ServerName: readServerName(r),
    InfoStruct: readShareEnumStruct(r),
    PreferedMaximumLength: r.u32('PreferedMaximumLength'),
    ResumeHandle: readUnique(r, 'ResumeHandle', () => r.u32('ResumeHandle')),
  };
}

export function encodeNetrShareEnumResponse(res: NetrShareEnumResponse): Buffer {
  const w = new NdrWriter();
  writeShareEnumStruct(w, res.InfoStruct);
  w.u32(res.TotalEntries);
  writeUnique(w, res.ResumeHandle, (v) => w.u32(v));
  w.u32(res.ReturnValue);
  return w.finish();
}

export function decodeNetrShareEnumResponse(stub: Buffer): NetrShareEnumResponse {
  const r = new NdrReader(stub);
  return {
    InfoStruct: readShareEnumStruct(r),
    TotalEntries: r.u32('TotalEntries'),
    ResumeHandle: readUnique(r, 'ResumeHandle', () => r.u32('ResumeHandle')),
    ReturnValue: r.u32('ReturnValue'),
  };
}

export function encodeNetrShareGetInfoRequest(req: NetrShareGetInfoRequest): Buffer {
  const w = new NdrWriter();
  writeServerName(w, req.ServerName);
  w.wstring(req.NetName).u32(req.Level);
  return w.finish();
}

export function decodeNetrShareGetInfoRequest(stub: Buffer): NetrShareGetInfoRequest {
  const r = new NdrReader(stub);
  return { ServerName: readServerName(r), NetName: r.wstring('NetName'), Level: r.u32('Level') };
}

export function encodeNetrShareGetInfoResponse(res: NetrShareGetInfoResponse): Buffer {
  const w = new NdrWriter();
  writeInfoUnion(w, SHARE_INFO_UNION, res.Level, res.InfoStruct);
  w.u32(res.ReturnValue);
  return w.finish();
}

export function decodeNetrShareGetInfoResponse(stub: Buffer): NetrShareGetInfoResponse {
  const r = new NdrReader(stub);
  const { Level, info } = readInfoUnion(r, SHARE_INFO_UNION);
  return { Level, InfoStruct: info as ShareInfo | null, ReturnValue: r.u32('ReturnValue') };
}

export function encodeNetrServerGetInfoRequest(req: NetrServerGetInfoRequest): Buffer {
  const w = new NdrWriter();
  writeServerName(w, req.ServerName);
  w.u32(req.Level);
  return w.finish();
}

export function decodeNetrServerGetInfoRequest(stub: Buffer): NetrServerGetInfoRequest {
  const r = new NdrReader(stub);
  return { ServerName: readServerName(r), Level: r.u32('Level') };
}

export function encodeNetrServerGetInfoResponse(res: NetrServerGetInfoResponse): Buffer {
  const w = new NdrWriter();
  writeInfoUnion(w, SERVER_INFO_UNION, res.Level, res.InfoStruct);
  w.u32(res.ReturnValue);
  return w.finish();
}

export function decodeNetrServerGetInfoResponse(stub: Buffer): NetrServerGetInfoResponse {
  const r = new NdrReader(stub);
  const { Level, info } = readInfoUnion(r, SERVER_INFO_UNION);
  return { Level, InfoStruct: info as ServerInfo | null, ReturnValue: r.u32('ReturnValue') };
}
