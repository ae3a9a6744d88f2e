/**
 * The admin socket's port verbs (`dsr port list`, `dsr port set`): argument checks on the daemon
 * side, so a request from any client gets the same answers as the CLI's.
 */
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

export function portAdminHandlers(portMap: () => PortMap | undefined): Record<string, AdminHandler> {
  return {
    'port.list': () => need(portMap()).list(),
    'port.set': (args) => need(portMap()).set(parsePortSet(args)),
  };
}
