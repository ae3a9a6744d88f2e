/**
 * The admin socket's port verbs (`dsr port list`, `dsr port set`): argument checks on the daemon
 * side, so a request from any client gets the same answers as the CLI's.
 */
import { parseIpv4Prefix } from '../offload/abi.js';
import type { KernelPortFilter } from '../offload/port-filter.js';
import type { LoadReport, PortLoadMeter } from '../offload/port-load.js';
import type { PortMap, PortSetRequest } from '../offload/portmap.js';
import type { AdminHandler } from './admin.js';
import { DsrError, ErrorCode } from './errors.js';

function need(portMap: PortMap | undefined): PortMap {
  if (!portMap) throw new DsrError(ErrorCode.USAGE, 'this DSR has no storage switch (configure switch.bridge and servers.NAME.switchPort)');
  return portMap;
}

/** A string, null (clear it), or absent; anything else is a usage error naming the field. */
function optionalString(args: Record<string, unknown>, key: string): string | null | undefined {
  const v = args[key];
  if (v === undefined || v === null || typeof v === 'string') return v;
  throw new DsrError(ErrorCode.USAGE, `${key} must be a string or null`);
}

export function parsePortSet(args: Record<string, unknown>): PortSetRequest {
  const port = args.port;
  if (typeof port !== 'string' || port === '') throw new DsrError(ErrorCode.USAGE, 'port is required');
  const req: PortSetRequest = { port };
  const server = optionalString(args, 'server');
  const mac = optionalString(args, 'mac');
  const ipv4 = optionalString(args, 'ipv4');
  if (server !== undefined) req.server = server;
  if (mac !== undefined) req.mac = mac;
  if (ipv4 !== undefined) req.ipv4 = ipv4;
  if (args.isolated !== undefined) {
    if (typeof args.isolated !== 'boolean') throw new DsrError(ErrorCode.USAGE, 'isolated must be true or false');
    req.isolated = args.isolated;
  }
  if (Object.keys(req).length === 1) throw new DsrError(ErrorCode.USAGE, `nothing to change on port ${port}`);
  return req;
}

/** The storage port filter as the daemon runs it: attached, or why not. */
export interface PortFilterRuntime {
  state: 'attached' | 'off' | 'unsupported';
  /** Why the filter is not attached. */
  reason?: string | undefined;
  filter?: KernelPortFilter;
  load?: PortLoadMeter;
  /** switch.labDirectPath: `port.direct` may open the filter for the lab's direct path. */
  labDirectPath?: boolean;
}

/** `port.direct` ({peer: 'a.b.c.d/n' | null}): the lab's direct path through the filter, on or off. */
function portDirect(rt: PortFilterRuntime, args: Record<string, unknown>): { filter: PortFilterRuntime['state']; peer: string | null } {
  const peer = optionalString(args, 'peer');
  if (peer === undefined) throw new DsrError(ErrorCode.USAGE, 'peer is required: an IPv4 prefix, or null to close the direct path');
  if (!rt.labDirectPath) throw new DsrError(ErrorCode.USAGE, 'switch.labDirectPath is off: the direct path through the port filter is for labs only');
  const prefix = peer === null ? undefined : parseIpv4Prefix(peer);
  // Without a filter there is nothing to open: the bridge and routing decide alone.
  rt.filter?.setDirectPeer(prefix);
  return { filter: rt.state, peer };
}

function portLoad(rt: PortFilterRuntime): LoadReport {
  if (!rt.load) throw new DsrError(ErrorCode.USAGE, `no load figures: the storage port filter is ${rt.state}${rt.reason ? ` (${rt.reason})` : ''}`);
  return rt.load.rates();
}

export function portAdminHandlers(portMap: () => PortMap | undefined, filter: PortFilterRuntime): Record<string, AdminHandler> {
  return {
    'port.list': () => need(portMap()).list(),
    'port.set': (args) => need(portMap()).set(parsePortSet(args)),
    'port.direct': (args) => portDirect(filter, args),
    'port.load': () => portLoad(filter),
  };
}
