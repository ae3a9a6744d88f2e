import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { WireError } from '../../../../src/control/errors.js';
import { openPipe, RpcFaultError, type RpcPipe } from '../../../../src/control/smb2/ipc/pipe.js';
import { type CatalogShare, netrShareEnum, type ShareCatalog, srvsvcInterface } from '../../../../src/control/smb2/ipc/srvsvc.js';
import { decodePdu, DREP_LITTLE_ENDIAN, encodePdu, NcaStatus, PfcFlags, PType } from '../../../../src/control/wire/dcerpc.js';
import type { ResponsePdu } from '../../../../src/control/wire/dcerpc.js';
import {
  decodeNetrServerGetInfoResponse,
  decodeNetrShareEnumRequest,
  decodeNetrShareEnumResponse,
  decodeNetrShareGetInfoResponse,
  encodeNetrServerGetInfoRequest,
  encodeNetrShareEnumRequest,
  encodeNetrShareGetInfoRequest,
  MAX_PREFERRED_LENGTH,
  type NetrShareEnumResponse,
  type ShareInfo1,
  type ShareInfo2,
  ShareType,
  SrvsvcOpnum,
  Werror,
} from '../../../../src/control/wire/srvsvc.js';
import { type CaptureName, capture, captureCatalog, captureStub } from '../../wire/fuzz-targets-rpc.js';

const PYTHON = '/usr/bin/python3';
const hasImpacket = spawnSync(PYTHON, ['-c', 'import impacket.dcerpc.v5.srvs'], { stdio: 'ignore' }).status === 0;

function impacket(script: string, args: string[]): unknown {
  const r = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Parses srvsvc response stubs with impacket and prints what a client would show. */
const IMPACKET_SRVS = String.raw`
import sys, json
from impacket.dcerpc.v5 import rpcrt, srvs
def s(v): return v.rstrip('\x00') if isinstance(v, str) else v
ack = rpcrt.MSRPCBindAck(bytes.fromhex(sys.argv[1]))
addr = ack['SecondaryAddr']
out = {'ack': [[c['Result'], c['Reason']] for c in ack.getCtxItems()], 'max_tfrag': ack['max_tfrag'],
       'sec_addr': addr.decode() if isinstance(addr, bytes) else addr}
def stub(arg):
    return b''.join(rpcrt.MSRPCRespHeader(bytes.fromhex(h))['pduData'] for h in arg.split(','))
r = srvs.NetrShareEnumResponse(stub(sys.argv[2]))
out['enum1'] = [[s(e['shi1_netname']), e['shi1_type'], s(e['shi1_remark'])] for e in r['InfoStruct']['ShareInfo']['Level1']['Buffer']]
out['enum1_total'] = r['TotalEntries']
r = srvs.NetrShareEnumResponse(stub(sys.argv[3]))
out['enum2'] = [[s(e['shi2_netname']), s(e['shi2_path']), e['shi2_max_uses']] for e in r['InfoStruct']['ShareInfo']['Level2']['Buffer']]
r = srvs.NetrShareGetInfoResponse(stub(sys.argv[4]))
i = r['InfoStruct']['ShareInfo502']
out['get502'] = [s(i['shi502_netname']), s(i['shi502_path']), i['shi502_reserved'], r['ErrorCode']]
r = srvs.NetrServerGetInfoResponse(stub(sys.argv[5]))
i = r['InfoStruct']['ServerInfo101']
out['srv101'] = [i['sv101_platform_id'], s(i['sv101_name']), s(i['sv101_comment']), r['ErrorCode']]
print(json.dumps(out))
`;

function drain(pipe: RpcPipe): Buffer[] {
  const out: Buffer[] = [];
  for (let m = pipe.read(0xffff); m !== undefined; m = pipe.read(0xffff)) out.push(m.data);
  return out;
}

/** Writes one PDU and returns its answer messages. */
function exchange(pipe: RpcPipe, pdu: Buffer): Buffer[] {
  pipe.write(pdu);
  return drain(pipe);
}

function responseStub(frags: Buffer[]): Buffer {
  return Buffer.concat(
    frags.map((f) => {
      const pdu = decodePdu(f);
      assert.equal(pdu.PTYPE, PType.RESPONSE, `expected a response, got ${pdu.PTYPE}`);
      return (pdu as ResponsePdu).stub;
    }),
  );
}

let callId = 100;
function request(opnum: number, stub: Buffer): Buffer {
  const pfc_flags = PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG;
  const common = { rpc_vers_minor: 0, pfc_flags, packed_drep: DREP_LITTLE_ENDIAN, call_id: callId++ };
  return encodePdu({ PTYPE: PType.REQUEST, ...common, alloc_hint: stub.length, p_cont_id: 0, opnum, stub });
}

/** One call on `pipe`: the reassembled response stub. */
function call(pipe: RpcPipe, opnum: number, stub: Buffer): Buffer {
  return responseStub(exchange(pipe, request(opnum, stub)));
}

function srvsvcPipe(catalog: ShareCatalog = captureCatalog, bind: Buffer = capture('bind')): RpcPipe {
  const pipe = openPipe('\\PIPE\\srvsvc', [srvsvcInterface(catalog)])!;
  assert.equal(decodePdu(exchange(pipe, bind)[0]!).PTYPE, PType.BIND_ACK);
  return pipe;
}

function catalogOf(shares: CatalogShare[]): ShareCatalog {
  return { serverName: () => 'DSR', serverComment: () => 'Dynamic session redirector', shares: () => shares };
}

test("the captured rpcclient conversation: our answers carry what smbd's did", () => {
  const pipe = srvsvcPipe();
  const answer = (name: CaptureName) => responseStub(exchange(pipe, capture(name)));
  const samba = (name: CaptureName) => captureStub(name);

  // Level 1 is the same, entry for entry (what smbclient -L prints).
  assert.deepEqual(decodeNetrShareEnumResponse(answer('enumLevel1')), decodeNetrShareEnumResponse(samba('sambaEnumLevel1')));
  assert.deepEqual(decodeNetrShareEnumResponse(answer('enumLevel1Resume')), decodeNetrShareEnumResponse(samba('sambaEnumLevel1Resume')));

  // Level 2: smbd sends an empty password where Windows sends NULL, and counts its live IPC$
  // connection in shi2_current_uses; the rest matches.
  const level2 = (r: NetrShareEnumResponse) =>
    (r.InfoStruct.ShareInfo!.Buffer as ShareInfo2[]).map((e) => [e.shi2_netname, e.shi2_type, e.shi2_remark, e.shi2_path, e.shi2_max_uses]);
  const ours2 = decodeNetrShareEnumResponse(answer('enumLevel2'));
  assert.deepEqual(level2(ours2), level2(decodeNetrShareEnumResponse(samba('sambaEnumLevel2'))));

  const ours502 = decodeNetrShareGetInfoResponse(answer('getInfoLevel502'));
  assert.deepEqual(ours502, {
    Level: 502,
    InfoStruct: {
      shi502_netname: 'alpha',
      shi502_type: ShareType.STYPE_DISKTREE,
      shi502_remark: 'First share',
      shi502_permissions: 0,
      shi502_max_uses: 0xffffffff,
      shi502_current_uses: 0,
      shi502_path: 'C:\\tmp\\hDsmb\\share1',
      shi502_passwd: null,
      shi502_reserved: 0,
      shi502_security_descriptor: null,
    },
    ReturnValue: Werror.ERROR_SUCCESS,
  });
  assert.equal(decodeNetrShareGetInfoResponse(answer('getInfoLevel2')).ReturnValue, Werror.ERROR_SUCCESS);

  const srv = decodeNetrServerGetInfoResponse(answer('serverInfo101'));
  const smbd = decodeNetrServerGetInfoResponse(samba('sambaServerInfo101'));
  assert.ok(srv.InfoStruct && smbd.InfoStruct && 'sv101_type' in srv.InfoStruct && 'sv101_type' in smbd.InfoStruct);
  assert.deepEqual({ ...srv.InfoStruct, sv101_type: 0 }, { ...smbd.InfoStruct, sv101_type: 0 });
  assert.equal(srv.InfoStruct.sv101_type, 0x00009003);
});

const needsImpacket = { skip: !hasImpacket && 'python3-impacket is not installed' };

test('impacket decodes our bind_ack and srvsvc responses, fragmented ones included', needsImpacket, () => {
  const shares: CatalogShare[] = Array.from({ length: 150 }, (_, i) => ({
    name: `share-${i}`,
    type: ShareType.STYPE_DISKTREE,
    comment: `Resource ${i} on storage server ${i % 7}`,
    path: `/srv/pool${i % 7}/share-${i}`,
  }));
  shares.push({ name: 'IPC$', type: ShareType.STYPE_IPC | ShareType.STYPE_SPECIAL, comment: 'IPC Service' });
  const pipe = openPipe('srvsvc', [srvsvcInterface(catalogOf(shares))])!;
  const ack = exchange(pipe, capture('bind'));
  const hexes = (frags: Buffer[]) => frags.map((f) => f.toString('hex')).join(',');
  const enum1 = exchange(pipe, capture('enumLevel1'));
  const enum2 = exchange(pipe, capture('enumLevel2'));
  assert.ok(enum2.length > 2, 'level 2 needs several fragments');
  const getInfo42 = encodeNetrShareGetInfoRequest({ ServerName: null, NetName: 'SHARE-42', Level: 502 });
  const got = impacket(IMPACKET_SRVS, [
    ack[0]!.toString('hex'),
    hexes(enum1),
    hexes(enum2),
    hexes(exchange(pipe, request(SrvsvcOpnum.NetrShareGetInfo, getInfo42))),
    hexes(exchange(pipe, capture('serverInfo101'))),
  ]);
  assert.deepEqual(got, {
    ack: [[0, 0]],
    max_tfrag: 4280,
    sec_addr: '\\PIPE\\srvsvc',
    enum1: shares.map((s) => [s.name, s.type >>> 0, s.comment]),
    enum1_total: shares.length,
    enum2: shares.map((s) => [s.name, s.path ?? '', 0xffffffff]),
    get502: ['share-42', '/srv/pool0/share-42', 0, 0],
    srv101: [500, 'DSR', 'Dynamic session redirector', 0],
  });
});

/** impacket's own DCE/RPC client: bind, srvsvc calls, alter_context, and requests fragmented to 40 bytes at the end. */
const IMPACKET_CLIENT = String.raw`
import sys, json
from impacket.dcerpc.v5 import transport, srvs, epm
def s(v): return v.rstrip('\x00')
dce = transport.DCERPCTransportFactory('ncacn_ip_tcp:127.0.0.1[%s]' % sys.argv[1]).get_dce_rpc()
dce.connect()
dce.bind(srvs.MSRPC_UUID_SRVS)
out = {}
r = srvs.hNetrShareEnum(dce, 1)
out['enum1'] = [s(e['shi1_netname']) for e in r['InfoStruct']['ShareInfo']['Level1']['Buffer']]
r = srvs.hNetrShareEnum(dce, 502)
out['enum502'] = [[s(e['shi502_netname']), s(e['shi502_path'])] for e in r['InfoStruct']['ShareInfo']['Level502']['Buffer']]
out['name'] = s(srvs.hNetrServerGetInfo(dce, 102)['InfoStruct']['ServerInfo102']['sv102_name'])
try:
    srvs.hNetrShareEnum(dce, 503)
except Exception as e:
    out['enum503'] = e.get_error_code()
try:
    srvs.hNetrShareGetInfo(dce, 'nope\x00', 1)
except Exception as e:
    out['missing'] = e.get_error_code()
r = srvs.hNetrShareEnum(dce.alter_ctx(srvs.MSRPC_UUID_SRVS), 0)
out['altered'] = [s(e['shi0_netname']) for e in r['InfoStruct']['ShareInfo']['Level0']['Buffer']]
try:
    dce.alter_ctx(epm.MSRPC_UUID_PORTMAP)
except Exception as e:
    out['alter_epm'] = 'abstract_syntax_not_supported' in str(e)
dce.set_max_fragment_size(40)
out['remark'] = s(srvs.hNetrShareGetInfo(dce, 'BETA-DATA\x00', 2)['InfoStruct']['ShareInfo2']['shi2_remark'])
print(json.dumps(out))
`;

test("impacket's DCE/RPC client talks to the pipe end to end", needsImpacket, async () => {
  // ncacn_ip_tcp carries the same connection-oriented PDUs as a named pipe, as a byte stream.
  const server = net.createServer((sock) => {
    const pipe = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
    sock.on('data', (d) => {
      pipe.write(d);
      for (const m of drain(pipe)) sock.write(m);
      if (pipe.broken) sock.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const child = spawn(PYTHON, ['-c', IMPACKET_CLIENT, String((server.address() as net.AddressInfo).port)]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), {
      enum1: ['alpha', 'beta-data', 'IPC$'],
      enum502: [
        ['alpha', 'C:\\tmp\\hDsmb\\share1'],
        ['beta-data', 'C:\\tmp\\hDsmb\\share2'],
        ['IPC$', 'C:\\tmp'],
      ],
      name: 'HDSMB',
      enum503: Werror.ERROR_INVALID_LEVEL,
      missing: Werror.NERR_NetNameNotFound,
      altered: ['alpha', 'beta-data', 'IPC$'],
      alter_epm: true,
      remark: 'Second share with a longer comment',
    });
  } finally {
    server.close();
  }
});

const IPC_COMMENT = 'IPC Service (helperD capture server)';
const IPC_TYPE = 0x80000003;

function enumRequest(Level: number, PreferedMaximumLength = MAX_PREFERRED_LENGTH, ResumeHandle: number | null = 0, container = true): Buffer {
  const ShareInfo = container ? { EntriesRead: 0, Buffer: null } : null;
  return encodeNetrShareEnumRequest({ ServerName: '\\\\dsr', InfoStruct: { Level, ShareInfo }, PreferedMaximumLength, ResumeHandle });
}

function entries<T>(r: NetrShareEnumResponse): T[] {
  return (r.InfoStruct.ShareInfo?.Buffer ?? []) as T[];
}

test('ResumeHandle and PreferedMaximumLength page through the catalog', () => {
  const shares = Array.from({ length: 23 }, (_, i) => ({ name: `s${i}`, type: 0, comment: 'c'.repeat(i) }));
  const pipe = srvsvcPipe(catalogOf(shares));
  const enumerate = (max: number, handle: number | null) =>
    decodeNetrShareEnumResponse(call(pipe, SrvsvcOpnum.NetrShareEnum, enumRequest(1, max, handle)));
  for (const max of [1, 60, 200, 1000]) {
    const seen: string[] = [];
    let handle = 0;
    for (let round = 0; ; round++) {
      assert.ok(round < 30, 'enumeration does not terminate');
      const r = enumerate(max, handle);
      const got = entries<ShareInfo1>(r);
      assert.ok(got.length >= 1);
      assert.equal(r.TotalEntries, shares.length - seen.length);
      seen.push(...got.map((e) => e.shi1_netname!));
      if (r.ReturnValue === Werror.ERROR_SUCCESS) {
        assert.equal(r.ResumeHandle, 0);
        break;
      }
      assert.equal(r.ReturnValue, Werror.ERROR_MORE_DATA);
      assert.equal(r.ResumeHandle, seen.length);
      handle = r.ResumeHandle!;
    }
    assert.deepEqual(seen, shares.map((s) => s.name), `PreferedMaximumLength ${max}`);
  }
  // One entry per call when nothing fits; each counts 12 fixed bytes + 2 * (length + 1) per string.
  assert.equal(entries(enumerate(1, 0)).length, 1);
  assert.equal(entries(enumerate(12 + 6 + 2 + (12 + 6 + 4), 0)).length, 2);
  const all = enumerate(MAX_PREFERRED_LENGTH, null);
  assert.deepEqual([entries(all).length, all.ResumeHandle, all.ReturnValue], [23, null, Werror.ERROR_SUCCESS]);
  const partial = enumerate(100, null);
  assert.deepEqual([partial.ResumeHandle, partial.ReturnValue], [null, Werror.ERROR_MORE_DATA]);
  const beyond = enumerate(MAX_PREFERRED_LENGTH, 99);
  assert.deepEqual([entries(beyond).length, beyond.TotalEntries, beyond.ReturnValue], [0, 0, Werror.ERROR_SUCCESS]);
});

test('NetrShareEnum levels: 0, 501, 502; invalid level and NULL container', () => {
  const pipe = srvsvcPipe();
  const enumerate = (stub: Buffer) => decodeNetrShareEnumResponse(call(pipe, SrvsvcOpnum.NetrShareEnum, stub));
  assert.deepEqual(entries(enumerate(enumRequest(0))), [{ shi0_netname: 'alpha' }, { shi0_netname: 'beta-data' }, { shi0_netname: 'IPC$' }]);
  const ipc501 = { shi501_netname: 'IPC$', shi501_type: IPC_TYPE, shi501_remark: IPC_COMMENT, shi501_flags: 0 };
  assert.deepEqual(entries(enumerate(enumRequest(501)))[2], ipc501);
  assert.equal(entries(enumerate(enumRequest(502))).length, 3);
  const failed = (Level: number, ReturnValue: number) => ({
    InfoStruct: { Level, ShareInfo: null },
    TotalEntries: 0,
    ResumeHandle: 0,
    ReturnValue,
  });
  assert.deepEqual(enumerate(enumRequest(503)), failed(503, Werror.ERROR_INVALID_LEVEL));
  assert.deepEqual(enumerate(enumRequest(1, MAX_PREFERRED_LENGTH, 0, false)), failed(1, Werror.ERROR_INVALID_PARAMETER));

  // The level 7 request smbd was sent (with a container pointer its IDL has no arm for): same answer bytes.
  const level7 = Buffer.from(
    // ServerName "x"; Level 7, discriminant 7, container {0, NULL}; PreferedMaximumLength; ResumeHandle NULL.
    '00000200 02000000 00000000 02000000 78000000 07000000 07000000 04000200 00000000 00000000 ffffffff 00000000'.replace(/ /g, ''),
    'hex',
  );
  assert.equal(call(pipe, SrvsvcOpnum.NetrShareEnum, level7).toString('hex'), captureStub('sambaEnumInvalidLevel').toString('hex'));
});

test('NetrShareGetInfo: case-insensitive names, level 1005, unknown names and levels', () => {
  const pipe = srvsvcPipe();
  const get = (NetName: string, Level: number) =>
    decodeNetrShareGetInfoResponse(
      call(pipe, SrvsvcOpnum.NetrShareGetInfo, encodeNetrShareGetInfoRequest({ ServerName: null, NetName, Level })),
    );
  assert.deepEqual(get('ALPHA', 0), { Level: 0, InfoStruct: { shi0_netname: 'alpha' }, ReturnValue: 0 });
  const ipc1 = { shi1_netname: 'IPC$', shi1_type: IPC_TYPE, shi1_remark: IPC_COMMENT };
  assert.deepEqual(get('ipc$', 1), { Level: 1, InfoStruct: ipc1, ReturnValue: 0 });
  assert.deepEqual(get('beta-data', 1005), { Level: 1005, InfoStruct: { shi1005_flags: 0 }, ReturnValue: 0 });
  assert.deepEqual(get('nope', 2), { Level: 2, InfoStruct: null, ReturnValue: Werror.NERR_NetNameNotFound });
  assert.deepEqual(get('alpha', 1004), { Level: 1004, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL });
  assert.deepEqual(get('alpha', 7), { Level: 7, InfoStruct: null, ReturnValue: Werror.ERROR_INVALID_LEVEL });
});

test('NetrServerGetInfo: levels 100, 101, 102 and an invalid level answered as smbd does', () => {
  const pipe = srvsvcPipe();
  const get = (Level: number) => call(pipe, SrvsvcOpnum.NetrServerGetInfo, encodeNetrServerGetInfoRequest({ ServerName: '\\\\DSR', Level }));
  const info100 = { sv100_platform_id: 500, sv100_name: 'HDSMB' };
  assert.deepEqual(decodeNetrServerGetInfoResponse(get(100)), { Level: 100, InfoStruct: info100, ReturnValue: 0 });
  const ours102 = decodeNetrServerGetInfoResponse(get(102));
  const smbd102 = decodeNetrServerGetInfoResponse(captureStub('sambaServerInfo102'));
  assert.deepEqual({ ...ours102.InfoStruct, sv102_type: 0 }, { ...smbd102.InfoStruct, sv102_type: 0 });
  assert.equal(get(7).toString('hex'), captureStub('sambaServerInfoInvalidLevel').toString('hex'));
});

test('unknown opnums and undecodable stubs become faults; the catalog is read on every call', () => {
  const shares: CatalogShare[] = [{ name: 'one', type: 0, comment: '' }];
  const iface = srvsvcInterface(catalogOf(shares));
  const isOpRange = (e: unknown) => e instanceof RpcFaultError && e.status === NcaStatus.nca_s_op_rng_error;
  assert.throws(() => iface.call(0, Buffer.alloc(0)), isOpRange);
  assert.throws(() => iface.call(SrvsvcOpnum.NetrShareEnum, Buffer.from([1, 2])), (e: unknown) => e instanceof WireError);
  const names = () => {
    const res = decodeNetrShareEnumResponse(iface.call(SrvsvcOpnum.NetrShareEnum, enumRequest(1)));
    return entries<ShareInfo1>(res).map((e) => e.shi1_netname);
  };
  assert.deepEqual(names(), ['one']);
  shares.push({ name: 'two', type: 0, comment: '' });
  assert.deepEqual(names(), ['one', 'two']);
});

test('share types are reported unsigned, as the wire carries them', () => {
  // The catalog the SMB layer builds spells IPC$ as STYPE_IPC | STYPE_SPECIAL, a negative number in JavaScript.
  const catalog = catalogOf([{ name: 'IPC$', type: ShareType.STYPE_IPC | ShareType.STYPE_SPECIAL, comment: '' }]);
  const res = netrShareEnum(catalog, decodeNetrShareEnumRequest(enumRequest(1)));
  assert.equal(entries<ShareInfo1>(res)[0]!.shi1_type, IPC_TYPE);
});
