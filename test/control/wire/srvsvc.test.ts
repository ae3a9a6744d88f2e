import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../src/control/errors.js';
import {
  decodeNetrServerGetInfoRequest,
  decodeNetrServerGetInfoResponse,
  decodeNetrShareEnumRequest,
  decodeNetrShareEnumResponse,
  decodeNetrShareGetInfoRequest,
  decodeNetrShareGetInfoResponse,
  encodeNetrServerGetInfoRequest,
  encodeNetrServerGetInfoResponse,
  encodeNetrShareEnumRequest,
  encodeNetrShareEnumResponse,
  encodeNetrShareGetInfoRequest,
  encodeNetrShareGetInfoResponse,
  MAX_PREFERRED_LENGTH,
  type NetrShareEnumResponse,
  type ShareInfo2,
  ShareType,
  Werror,
} from '../../../src/control/wire/srvsvc.js';
import { assertOnlyWireErrors, assertRoundTrip, assertTruncationsTyped } from '../../helpers/wire.js';
import { type CaptureName, captureStub, fuzzTargets } from './fuzz-targets-rpc.js';

const isWireError = (code?: ErrorCode) => (e: unknown) => e instanceof WireError && (code === undefined || e.code === code);
const IPC = (ShareType.STYPE_IPC | ShareType.STYPE_SPECIAL) >>> 0;

test('the captured requests decode, and re-encode to the bytes rpcclient and smbclient sent', () => {
  const enum1 = assertRoundTrip(decodeNetrShareEnumRequest, encodeNetrShareEnumRequest, captureStub('enumLevel1'));
  assert.deepEqual(enum1, {
    ServerName: '127.0.0.1',
    InfoStruct: { Level: 1, ShareInfo: { EntriesRead: 0, Buffer: null } },
    PreferedMaximumLength: MAX_PREFERRED_LENGTH,
    ResumeHandle: null,
  });
  assert.equal(assertRoundTrip(decodeNetrShareEnumRequest, encodeNetrShareEnumRequest, captureStub('enumLevel2')).InfoStruct.Level, 2);
  assert.equal(assertRoundTrip(decodeNetrShareEnumRequest, encodeNetrShareEnumRequest, captureStub('enumLevel1Resume')).ResumeHandle, 0);
  assert.deepEqual(assertRoundTrip(decodeNetrShareGetInfoRequest, encodeNetrShareGetInfoRequest, captureStub('getInfoLevel502')), {
    ServerName: '127.0.0.1',
    NetName: 'alpha',
    Level: 502,
  });
  assert.deepEqual(assertRoundTrip(decodeNetrServerGetInfoRequest, encodeNetrServerGetInfoRequest, captureStub('serverInfo101')), {
    ServerName: '\\\\127.0.0.1',
    Level: 101,
  });
});

test("smbd's responses decode", () => {
  const l1 = decodeNetrShareEnumResponse(captureStub('sambaEnumLevel1'));
  assert.deepEqual(l1.InfoStruct.ShareInfo?.Buffer, [
    { shi1_netname: 'alpha', shi1_type: 0, shi1_remark: 'First share' },
    { shi1_netname: 'beta-data', shi1_type: 0, shi1_remark: 'Second share with a longer comment' },
    { shi1_netname: 'IPC$', shi1_type: IPC, shi1_remark: 'IPC Service (helperD capture server)' },
  ]);
  assert.deepEqual([l1.TotalEntries, l1.ResumeHandle, l1.ReturnValue], [3, null, 0]);
  assert.equal(decodeNetrShareEnumResponse(captureStub('sambaEnumLevel1Resume')).ResumeHandle, 0);

  const l2 = decodeNetrShareEnumResponse(captureStub('sambaEnumLevel2')).InfoStruct.ShareInfo?.Buffer as ShareInfo2[];
  assert.deepEqual(
    l2.map((s) => [s.shi2_netname, s.shi2_path, s.shi2_max_uses, s.shi2_passwd]),
    [
      ['alpha', 'C:\\tmp\\hDsmb\\share1', 0xffffffff, ''],
      ['beta-data', 'C:\\tmp\\hDsmb\\share2', 0xffffffff, ''],
      ['IPC$', 'C:\\tmp', 0xffffffff, ''],
    ],
  );

  const g502 = decodeNetrShareGetInfoResponse(captureStub('sambaGetInfoLevel502'));
  assert.equal(g502.Level, 502);
  assert.ok(g502.InfoStruct !== null && 'shi502_security_descriptor' in g502.InfoStruct);
  assert.deepEqual([g502.InfoStruct.shi502_reserved, g502.InfoStruct.shi502_security_descriptor], [0, null]);

  assert.deepEqual(decodeNetrServerGetInfoResponse(captureStub('sambaServerInfo101')), {
    Level: 101,
    InfoStruct: {
      sv101_platform_id: 500,
      sv101_name: 'HDSMB',
      sv101_version_major: 6,
      sv101_version_minor: 1,
      sv101_type: 0x00809a03,
      sv101_comment: 'helperD capture server',
    },
    ReturnValue: 0,
  });
  const s102 = decodeNetrServerGetInfoResponse(captureStub('sambaServerInfo102'));
  assert.ok(s102.InfoStruct !== null && 'sv102_userpath' in s102.InfoStruct);
  assert.deepEqual([s102.InfoStruct.sv102_disc, s102.InfoStruct.sv102_userpath], [15, 'C:\\']);
});

test("invalid levels have no union arm, and we encode them as smbd does", () => {
  const e = assertRoundTrip(decodeNetrShareEnumResponse, encodeNetrShareEnumResponse, captureStub('sambaEnumInvalidLevel'));
  const invalid = Werror.ERROR_INVALID_LEVEL;
  assert.deepEqual(e, { InfoStruct: { Level: 7, ShareInfo: null }, TotalEntries: 0, ResumeHandle: null, ReturnValue: invalid });
  const s = assertRoundTrip(decodeNetrServerGetInfoResponse, encodeNetrServerGetInfoResponse, captureStub('sambaServerInfoInvalidLevel'));
  assert.deepEqual(s, { Level: 7, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL });
});

test('a level the IDL has but we do not implement gets a NULL arm', () => {
  const invalid = Werror.ERROR_INVALID_LEVEL;
  const InfoStruct = { Level: 503, ShareInfo: null };
  const enum503 = encodeNetrShareEnumResponse({ InfoStruct, TotalEntries: 0, ResumeHandle: 0, ReturnValue: invalid });
  assert.equal(enum503.toString('hex'), 'f7010000' + 'f7010000' + '00000000' + '00000000' + '00000200' + '00000000' + '7c000000');
  const get1004 = encodeNetrShareGetInfoResponse({ Level: 1004, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL });
  assert.equal(get1004.toString('hex'), 'ec030000' + '00000000' + '7c000000');
  const get7 = encodeNetrShareGetInfoResponse({ Level: 7, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL });
  assert.equal(get7.toString('hex'), '07000000' + '7c000000');
  assert.throws(
    () => encodeNetrShareGetInfoResponse({ Level: 1004, InfoStruct: { shi1005_flags: 0 }, ReturnValue: 0 }),
    isWireError(ErrorCode.WIRE_ENCODE),
  );
  assert.throws(
    () =>
      encodeNetrShareEnumResponse({
        InfoStruct: { Level: 7, ShareInfo: { EntriesRead: 0, Buffer: [] } },
        TotalEntries: 0,
        ResumeHandle: null,
        ReturnValue: 0,
      }),
    isWireError(ErrorCode.WIRE_ENCODE),
  );
});

test('NDR consistency rules are enforced on decode', () => {
  const stub = captureStub('enumLevel1');
  const badSwitch = Buffer.from(stub);
  badSwitch.writeUInt32LE(2, 40); // union discriminant after Level
  assert.throws(() => decodeNetrShareEnumRequest(badSwitch), isWireError(ErrorCode.WIRE_BAD_FIELD));

  const res = decodeNetrShareEnumResponse(captureStub('sambaEnumLevel1'));
  const wrongCount = encodeNetrShareEnumResponse(res);
  wrongCount.writeUInt32LE(2, 12); // EntriesRead 2 for a 3-entry Buffer
  assert.throws(() => decodeNetrShareEnumResponse(wrongCount), isWireError(ErrorCode.WIRE_BAD_FIELD));
  const huge = encodeNetrShareEnumResponse(res);
  huge.writeUInt32LE(0x80000000, 12);
  huge.writeUInt32LE(0x80000000, 20); // MaximumCount of the array
  assert.throws(() => decodeNetrShareEnumResponse(huge), isWireError(ErrorCode.WIRE_BAD_FIELD));
  assert.throws(
    () => encodeNetrShareEnumResponse({ ...res, InfoStruct: { Level: 1, ShareInfo: { EntriesRead: 1, Buffer: [] } } }),
    isWireError(ErrorCode.WIRE_ENCODE),
  );
});

const str = fc.string({ maxLength: 24 });
const shareArb = fc.record({ name: str, type: fc.constantFrom(0, 1, IPC), comment: str, path: str });

function enumResponse(level: number, shares: { name: string; type: number; comment: string; path: string }[]): NetrShareEnumResponse {
  const entries = shares.map((s) => {
    switch (level) {
      case 0:
        return { shi0_netname: s.name };
      case 1:
        return { shi1_netname: s.name, shi1_type: s.type, shi1_remark: s.comment };
      case 501:
        return { shi501_netname: s.name, shi501_type: s.type, shi501_remark: null, shi501_flags: 0 };
      default:
        return {
          shi502_netname: s.name,
          shi502_type: s.type,
          shi502_remark: s.comment,
          shi502_permissions: 0,
          shi502_max_uses: 0xffffffff,
          shi502_current_uses: 1,
          shi502_path: s.path,
          shi502_passwd: null,
          shi502_reserved: s.name.length % 3,
          shi502_security_descriptor: s.name.length % 3 === 0 ? null : Buffer.alloc(s.name.length % 3, 0xa5),
        };
    }
  });
  return {
    InfoStruct: { Level: level, ShareInfo: { EntriesRead: entries.length, Buffer: entries } },
    TotalEntries: shares.length,
    ResumeHandle: 5,
    ReturnValue: 0,
  };
}

test('property: share enumerations of every level round-trip', () => {
  fc.assert(
    fc.property(fc.constantFrom(0, 1, 501, 502), fc.array(shareArb, { maxLength: 6 }), (level, shares) => {
      const res = enumResponse(level, shares);
      const bytes = encodeNetrShareEnumResponse(res);
      assert.deepEqual(decodeNetrShareEnumResponse(bytes), res);
      assertTruncationsTyped(decodeNetrShareEnumResponse, bytes.subarray(0, Math.min(bytes.length, 200)));
    }),
    { numRuns: 200 },
  );
});

const requestTargets = ['srvsvc.NetrShareEnum.request', 'srvsvc.NetrShareGetInfo.request', 'srvsvc.NetrServerGetInfo.request'] as const;
const requestSeeds: CaptureName[] = ['enumLevel1', 'enumLevel2', 'enumLevel1Resume', 'getInfoLevel2', 'getInfoLevel502', 'serverInfo101'];

test('property: mutated request stubs only raise WireErrors in every request decoder', () => {
  const seeds = requestSeeds.map(captureStub);
  fc.assert(
    fc.property(
      fc.constantFrom(...seeds),
      fc.constantFrom(...requestTargets),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (seed, target, edits, cut) => {
        const b = Buffer.from(seed);
        for (const [at, v] of edits) b[at % b.length] = v;
        assertOnlyWireErrors(() => fuzzTargets[target]!(b.subarray(0, cut % (b.length + 1))), target);
      },
    ),
    { numRuns: 3000 },
  );
});
