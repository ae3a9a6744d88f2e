/**
 * The srvsvc interface (MS-SRVS) as the DSR serves it: shares and server information come from
 * a catalog (the resource table plus IPC$), so `smbclient -L` and `net view` list the DSR's
 * shares without any storage server being contacted.
 */
import { NcaStatus } from '../../wire/dcerpc.js';
import { structWireSize } from '../../wire/ndr.js';
import {
  decodeNetrServerGetInfoRequest,
  decodeNetrShareEnumRequest,
  decodeNetrShareGetInfoRequest,
  encodeNetrServerGetInfoResponse,
  encodeNetrShareEnumResponse,
  encodeNetrShareGetInfoResponse,
  MAX_PREFERRED_LENGTH,
  type NetrServerGetInfoRequest,
  type NetrServerGetInfoResponse,
  type NetrShareEnumRequest,
  type NetrShareEnumResponse,
  type NetrShareGetInfoRequest,
  type NetrShareGetInfoResponse,
  PLATFORM_ID_NT,
  type ServerInfo,
  SERVER_INFO_LEVELS,
  SHARE_ENUM_LEVELS,
  SHARE_INFO_LEVELS,
  type ShareInfo,
  shareInfoFields,
  SRVSVC_UUID,
  SRVSVC_VERSION,
  SrvsvcOpnum,
  SvType,
  Werror,
} from '../../wire/srvsvc.js';
import { type RpcInterface, RpcFaultError } from './pipe.js';

export interface CatalogShare {
  name: string;
  /** STYPE_* (MS-SRVS 2.2.2.4), e.g. STYPE_IPC | STYPE_SPECIAL for IPC$. */
  type: number;
  comment: string;
  /** Shown at levels 2 and 502; empty when absent. */
  path?: string;
}

export interface ShareCatalog {
  serverName(): string;
  serverComment(): string;
  shares(): CatalogShare[];
}

/** What Samba reports (sv101_version_*, and the level 102 tunables) so clients see a familiar server. */
const VERSION_MAJOR = 6;
const VERSION_MINOR = 1;
const SERVER_TYPE = SvType.SV_TYPE_WORKSTATION | SvType.SV_TYPE_SERVER | SvType.SV_TYPE_NT | SvType.SV_TYPE_SERVER_NT;
const SHI_USES_UNLIMITED = 0xffffffff;

/** The structure of `share` at `level`, which must be one of SHARE_INFO_LEVELS. */
function shareInfo(level: number, s: CatalogShare): ShareInfo {
  const path = s.path ?? '';
  // STYPE_SPECIAL is the sign bit: `STYPE_IPC | STYPE_SPECIAL` is negative in JavaScript.
  const type = s.type >>> 0;
  switch (level) {
    case 0:
      return { shi0_netname: s.name };
    case 1:
      return { shi1_netname: s.name, shi1_type: type, shi1_remark: s.comment };
    case 2:
      return {
        shi2_netname: s.name,
        shi2_type: type,
        shi2_remark: s.comment,
        shi2_permissions: 0,
        shi2_max_uses: SHI_USES_UNLIMITED,
        shi2_current_uses: 0,
        shi2_path: path,
        shi2_passwd: null,
      };
    case 501:
      return { shi501_netname: s.name, shi501_type: type, shi501_remark: s.comment, shi501_flags: 0 };
    case 502:
      return {
        shi502_netname: s.name,
        shi502_type: type,
        shi502_remark: s.comment,
        shi502_permissions: 0,
        shi502_max_uses: SHI_USES_UNLIMITED,
        shi502_current_uses: 0,
        shi502_path: path,
        shi502_passwd: null,
        shi502_reserved: 0,
        shi502_security_descriptor: null,
      };
    default: // 1005, the one SHARE_INFO level NetrShareEnum lacks
      return { shi1005_flags: 0 };
  }
}

/**
 * The size an entry counts against PreferedMaximumLength: its fixed part plus its strings with
 * their NULs, as the Windows server sizes its output buffer.
 */
function entrySize(level: number, info: ShareInfo): number {
  let size = structWireSize(shareInfoFields(level) ?? []);
  for (const v of Object.values(info)) if (typeof v === 'string') size += 2 * (v.length + 1);
  return size;
}

/** MS-SRVS 3.1.4.8. ResumeHandle is the index of the next share in the catalog. */
export function netrShareEnum(catalog: ShareCatalog, req: NetrShareEnumRequest): NetrShareEnumResponse {
  const level = req.InfoStruct.Level;
  const fail = (ReturnValue: number): NetrShareEnumResponse => ({
    InfoStruct: { Level: level, ShareInfo: null },
    TotalEntries: 0,
    ResumeHandle: req.ResumeHandle,
    ReturnValue,
  });
  if (!SHARE_ENUM_LEVELS.has(level)) return fail(Werror.ERROR_INVALID_LEVEL);
  if (req.InfoStruct.ShareInfo === null) return fail(Werror.ERROR_INVALID_PARAMETER);
  const start = req.ResumeHandle ?? 0;
  const rest = catalog.shares().slice(start);
  const entries: ShareInfo[] = [];
  let used = 0;
  for (const s of rest) {
    const info = shareInfo(level, s);
    used += entrySize(level, info);
    // At least one entry per call, so a client with a tiny buffer still makes progress.
    if (req.PreferedMaximumLength !== MAX_PREFERRED_LENGTH && entries.length > 0 && used > req.PreferedMaximumLength) break;
    entries.push(info);
  }
  const more = entries.length < rest.length;
  return {
    InfoStruct: { Level: level, ShareInfo: { EntriesRead: entries.length, Buffer: entries } },
    TotalEntries: rest.length,
    ResumeHandle: req.ResumeHandle === null ? null : more ? start + entries.length : 0,
    ReturnValue: more ? Werror.ERROR_MORE_DATA : Werror.ERROR_SUCCESS,
  };
}

/** MS-SRVS 3.1.4.10. Share names compare case-insensitively. */
export function netrShareGetInfo(catalog: ShareCatalog, req: NetrShareGetInfoRequest): NetrShareGetInfoResponse {
  const fail = (ReturnValue: number): NetrShareGetInfoResponse => ({ Level: req.Level, InfoStruct: null, ReturnValue });
  if (!SHARE_INFO_LEVELS.has(req.Level)) return fail(Werror.ERROR_INVALID_LEVEL);
  const wanted = req.NetName.toLowerCase();
  const share = catalog.shares().find((s) => s.name.toLowerCase() === wanted);
  if (share === undefined) return fail(Werror.NERR_NetNameNotFound);
  return { Level: req.Level, InfoStruct: shareInfo(req.Level, share), ReturnValue: Werror.ERROR_SUCCESS };
}

/** The structure of the server at `level`, which must be one of SERVER_INFO_LEVELS. */
function serverInfo(level: number, catalog: ShareCatalog): ServerInfo {
  const name = catalog.serverName();
  if (level === 100) return { sv100_platform_id: PLATFORM_ID_NT, sv100_name: name };
  const comment = catalog.serverComment();
  if (level === 101) {
    return {
      sv101_platform_id: PLATFORM_ID_NT,
      sv101_name: name,
      sv101_version_major: VERSION_MAJOR,
      sv101_version_minor: VERSION_MINOR,
      sv101_type: SERVER_TYPE,
      sv101_comment: comment,
    };
  }
  return {
    sv102_platform_id: PLATFORM_ID_NT,
    sv102_name: name,
    sv102_version_major: VERSION_MAJOR,
    sv102_version_minor: VERSION_MINOR,
    sv102_type: SERVER_TYPE,
    sv102_comment: comment,
    sv102_users: 0xffffffff,
    sv102_disc: 15,
    sv102_hidden: 0,
    sv102_announce: 240,
    sv102_anndelta: 3000,
    sv102_licenses: 100000,
    sv102_userpath: 'C:\\',
  };
}

/** MS-SRVS 3.1.4.17. */
export function netrServerGetInfo(catalog: ShareCatalog, req: NetrServerGetInfoRequest): NetrServerGetInfoResponse {
  if (!SERVER_INFO_LEVELS.has(req.Level)) return { Level: req.Level, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL };
  return { Level: req.Level, InfoStruct: serverInfo(req.Level, catalog), ReturnValue: Werror.ERROR_SUCCESS };
}

/** The srvsvc RpcInterface over `catalog` (read afresh on every call). */
export function srvsvcInterface(catalog: ShareCatalog): RpcInterface {
  return {
    name: 'srvsvc',
    uuid: SRVSVC_UUID,
    version: SRVSVC_VERSION,
    call(opnum: number, stub: Buffer): Buffer {
      switch (opnum) {
        case SrvsvcOpnum.NetrShareEnum:
          return encodeNetrShareEnumResponse(netrShareEnum(catalog, decodeNetrShareEnumRequest(stub)));
        case SrvsvcOpnum.NetrShareGetInfo:
          return encodeNetrShareGetInfoResponse(netrShareGetInfo(catalog, decodeNetrShareGetInfoRequest(stub)));
        case SrvsvcOpnum.NetrServerGetInfo:
          return encodeNetrServerGetInfoResponse(netrServerGetInfo(catalog, decodeNetrServerGetInfoRequest(stub)));
        default:
          throw new RpcFaultError(NcaStatus.nca_s_op_rng_error, `srvsvc opnum ${opnum} is not served`);
      }
    },
  };
}
