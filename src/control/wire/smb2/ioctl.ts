/**
 * IOCTL (MS-SMB2 2.2.31, 2.2.32), plus the payloads the DSR handles itself:
 * VALIDATE_NEGOTIATE_INFO (2.2.31.4, 2.2.32.6) and FSCTL_PIPE_TRANSCEIVE (raw bytes both ways).
 */
import { ErrorCode, WireError } from '../../errors.js';
import { Reader, sliceField, Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { FsctlCode } from './constants.js';
import { writeGuid } from './create-contexts.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.31 Flags. */
export const IoctlFlags = {
  SMB2_0_IOCTL_IS_IOCTL: 0x00000000,
  SMB2_0_IOCTL_IS_FSCTL: 0x00000001,
} as const;

/** The two buffers of an IOCTL request or response; the counts are the buffers' lengths. */
export interface IoctlBuffers {
  /** Header-relative; undefined means right after the fixed part (requests: 0 when Input is empty). */
  InputOffset?: number;
  /** A view into the message when decoded. */
  Input: Buffer;
  /** Header-relative; undefined means 8-aligned after Input, or InputOffset when Output is empty. */
  OutputOffset?: number;
  /** A view into the message when decoded. */
  Output: Buffer;
}

function readBuffers(
  msg: Buffer,
  fixedSize: number,
  InputOffset: number,
  InputCount: number,
  OutputOffset: number,
  OutputCount: number,
): IoctlBuffers {
  const Input = sliceField(msg, InputOffset, InputCount, 'IOCTL InputOffset', fixedEnd(fixedSize));
  const afterInput = InputCount === 0 ? fixedEnd(fixedSize) : InputOffset + InputCount;
  const Output = sliceField(msg, OutputOffset, OutputCount, 'IOCTL OutputOffset', afterInput);
  return { InputOffset, Input, OutputOffset, Output };
}

/**
 * Places Input then Output after the fixed part and fills in the offsets at `inputField` and
 * `outputField`. Empty buffers write nothing: requests (Samba, Windows) give an empty Input
 * offset 0 and responses (Samba) 0x70; an empty Output shares the Input's offset.
 */
function placeBuffers(w: Writer, b: IoctlBuffers, inputField: number, outputField: number, emptyInputOffset: number): void {
  const inputOffset = b.InputOffset ?? (b.Input.length > 0 ? w.pos : emptyInputOffset);
  if (b.Input.length > 0) placeBuffer(w, b.Input, 'IOCTL Input', inputOffset);
  const outputOffset = b.Output.length > 0 ? placeBuffer(w, b.Output, 'IOCTL Output', b.OutputOffset, 8) : (b.OutputOffset ?? inputOffset);
  w.setU32(inputField, inputOffset).setU32(outputField, outputOffset);
}

/** MS-SMB2 2.2.31 SMB2 IOCTL Request. */
export interface IoctlRequest extends IoctlBuffers {
  Reserved: number;
  /** FsctlCode for FSCTLs. */
  CtlCode: number;
  /** 0xFFFFFFFFFFFFFFFF halves for FSCTLs that address no open (e.g. VALIDATE_NEGOTIATE_INFO). */
  FileId: FileId;
  MaxInputResponse: number;
  MaxOutputResponse: number;
  Flags: number;
  Reserved2: number;
}

const IOCTL_REQUEST_SIZE = 57;

export function decodeIoctlRequest(msg: Buffer): IoctlRequest {
  const r = bodyReader(msg, IOCTL_REQUEST_SIZE, 'IOCTL request');
  const Reserved = r.u16();
  const CtlCode = r.u32();
  const FileId = readFileId(r);
  const InputOffset = r.u32();
  const InputCount = r.u32();
  const MaxInputResponse = r.u32();
  const OutputOffset = r.u32();
  const OutputCount = r.u32();
  const MaxOutputResponse = r.u32();
  const Flags = r.u32();
  const Reserved2 = r.u32();
  const buffers = readBuffers(msg, IOCTL_REQUEST_SIZE, InputOffset, InputCount, OutputOffset, OutputCount);
  return { Reserved, CtlCode, FileId, ...buffers, MaxInputResponse, MaxOutputResponse, Flags, Reserved2 };
}

/** With neither buffer the Buffer is 1 zero byte, as clients send it. */
export function encodeIoctlRequest(req: IoctlRequest): Buffer {
  const w = bodyWriter(IOCTL_REQUEST_SIZE);
  w.u16(req.Reserved).u32(req.CtlCode);
  writeFileId(w, req.FileId);
  const fields = w.pos;
  w.u32(0).u32(req.Input.length).u32(req.MaxInputResponse).u32(0).u32(req.Output.length).u32(req.MaxOutputResponse);
  w.u32(req.Flags).u32(req.Reserved2);
  placeBuffers(w, req, fields, fields + 12, 0);
  if (w.pos === fixedEnd(IOCTL_REQUEST_SIZE)) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.32 SMB2 IOCTL Response. */
export interface IoctlResponse extends IoctlBuffers {
  Reserved: number;
  CtlCode: number;
  FileId: FileId;
  Flags: number;
  Reserved2: number;
}

const IOCTL_RESPONSE_SIZE = 49;

export function decodeIoctlResponse(msg: Buffer): IoctlResponse {
  const r = bodyReader(msg, IOCTL_RESPONSE_SIZE, 'IOCTL response');
  const Reserved = r.u16();
  const CtlCode = r.u32();
  const FileId = readFileId(r);
  const InputOffset = r.u32();
  const InputCount = r.u32();
  const OutputOffset = r.u32();
  const OutputCount = r.u32();
  const Flags = r.u32();
  const Reserved2 = r.u32();
  const buffers = readBuffers(msg, IOCTL_RESPONSE_SIZE, InputOffset, InputCount, OutputOffset, OutputCount);
  return { Reserved, CtlCode, FileId, ...buffers, Flags, Reserved2 };
}

/** Without buffers the body is the 48-byte fixed part alone, as Samba sends it. */
export function encodeIoctlResponse(res: IoctlResponse): Buffer {
  const w = bodyWriter(IOCTL_RESPONSE_SIZE);
  w.u16(res.Reserved).u32(res.CtlCode);
  writeFileId(w, res.FileId);
  const fields = w.pos;
  w.u32(0).u32(res.Input.length).u32(0).u32(res.Output.length).u32(res.Flags).u32(res.Reserved2);
  placeBuffers(w, res, fields, fields + 8, fixedEnd(IOCTL_RESPONSE_SIZE));
  return finishBody(w);
}

/** An FSCTL_PIPE_TRANSCEIVE request: one message-mode write and read on a named pipe (MS-FSCC 2.3.49). */
export function pipeTransceiveRequest(fileId: FileId, data: Buffer, maxOutputResponse: number): IoctlRequest {
  return {
    Reserved: 0,
    CtlCode: FsctlCode.PIPE_TRANSCEIVE,
    FileId: fileId,
    Input: data,
    MaxInputResponse: 0,
    Output: Buffer.alloc(0),
    MaxOutputResponse: maxOutputResponse,
    Flags: IoctlFlags.SMB2_0_IOCTL_IS_FSCTL,
    Reserved2: 0,
  };
}

/** The response to an FSCTL_PIPE_TRANSCEIVE; `data` is the pipe's reply (STATUS_BUFFER_OVERFLOW if truncated). */
export function pipeTransceiveResponse(fileId: FileId, data: Buffer): IoctlResponse {
  return { Reserved: 0, CtlCode: FsctlCode.PIPE_TRANSCEIVE, FileId: fileId, Input: Buffer.alloc(0), Output: data, Flags: 0, Reserved2: 0 };
}

/** MS-SMB2 2.2.31.4 VALIDATE_NEGOTIATE_INFO Request (the IOCTL Input). DialectCount is Dialects.length. */
export interface ValidateNegotiateInfoRequest {
  Capabilities: number;
  /** The client GUID, 16 bytes. */
  Guid: Buffer;
  SecurityMode: number;
  Dialects: number[];
}

const VALIDATE_NEGOTIATE_FIXED = 24;

/** Bytes after the dialect list are ignored, as the server's length check (MS-SMB2 3.3.5.15.12) allows. */
export function decodeValidateNegotiateInfoRequest(input: Buffer): ValidateNegotiateInfoRequest {
  const r = new Reader(input);
  r.need(VALIDATE_NEGOTIATE_FIXED, 'VALIDATE_NEGOTIATE_INFO request');
  const Capabilities = r.u32();
  const Guid = r.copy(16);
  const SecurityMode = r.u16();
  const DialectCount = r.u16();
  if (DialectCount * 2 > r.remaining) {
    throw new WireError(
      ErrorCode.WIRE_BAD_FIELD,
      `VALIDATE_NEGOTIATE_INFO DialectCount ${DialectCount} does not fit ${r.remaining} bytes`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  const Dialects: number[] = [];
  for (let i = 0; i < DialectCount; i++) Dialects.push(r.u16());
  return { Capabilities, Guid, SecurityMode, Dialects };
}

export function encodeValidateNegotiateInfoRequest(v: ValidateNegotiateInfoRequest): Buffer {
  if (v.Dialects.length > 0xffff) throw new WireError(ErrorCode.WIRE_ENCODE, `${v.Dialects.length} dialects do not fit DialectCount`);
  const w = new Writer(VALIDATE_NEGOTIATE_FIXED + 2 * v.Dialects.length);
  writeGuid(w.u32(v.Capabilities), v.Guid, 'VALIDATE_NEGOTIATE_INFO Guid').u16(v.SecurityMode).u16(v.Dialects.length);
  for (const d of v.Dialects) w.u16(d);
  return w.finish();
}

/** MS-SMB2 2.2.32.6 VALIDATE_NEGOTIATE_INFO Response (the IOCTL Output). */
export interface ValidateNegotiateInfoResponse {
  Capabilities: number;
  /** The server GUID, 16 bytes. */
  Guid: Buffer;
  SecurityMode: number;
  Dialect: number;
}

export function decodeValidateNegotiateInfoResponse(output: Buffer): ValidateNegotiateInfoResponse {
  if (output.length !== VALIDATE_NEGOTIATE_FIXED) {
    throw new WireError(
      ErrorCode.WIRE_BAD_FIELD,
      `VALIDATE_NEGOTIATE_INFO response is ${output.length} bytes, expected ${VALIDATE_NEGOTIATE_FIXED}`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  const r = new Reader(output);
  return { Capabilities: r.u32(), Guid: r.copy(16), SecurityMode: r.u16(), Dialect: r.u16() };
}

export function encodeValidateNegotiateInfoResponse(v: ValidateNegotiateInfoResponse): Buffer {
  const w = new Writer(VALIDATE_NEGOTIATE_FIXED);
  writeGuid(w.u32(v.Capabilities), v.Guid, 'VALIDATE_NEGOTIATE_INFO Guid').u16(v.SecurityMode).u16(v.Dialect);
  return w.finish();
}
