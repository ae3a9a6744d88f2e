/**
 * The SMB2 relay's sk_skb programs (bpf/smb2_relay.bpf.c) on real loopback sockets, as root:
 * builds bench/kernel-relay (clang, bpftool, libbpf-dev) and runs its fixtures binary, which
 * first checks that BPF_PROG_TEST_RUN still refuses sk_skb on this kernel (hence real sockets),
 * then feeds every rewrite and pass reason, split, coalesced, compound and large frames through
 * both the strparser and the cut-through verdict and compares the bytes that come out.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { missingCommands, run } from '../../src/lab/process.js';

const DIR = fileURLToPath(new URL('../../../bench/kernel-relay', import.meta.url));
const missing = missingCommands(['clang', 'bpftool', 'make', 'cc']);
const skip = process.getuid?.() !== 0 ? 'needs root: loads BPF programs' : missing.length ? `missing: ${missing.join(', ')}` : false;

test('kernel relay fixtures: every rewrite and pass reason, both framings', { skip, timeout: 120_000 }, async () => {
  const build = await run(['make', '-C', DIR], { timeoutMs: 90_000 });
  assert.equal(build.code, 0, build.stderr);
  const r = await run([`${DIR}/build/fixtures`, `${DIR}/build/smb2_relay.bpf.o`], { timeoutMs: 60_000 });
  assert.match(r.stdout, /BPF_PROG_TEST_RUN on sk_skb: /);
  assert.match(r.stdout, /mode strparser/);
  assert.match(r.stdout, /mode cut-through/);
  assert.doesNotMatch(r.stdout, /FAIL/);
  assert.match(r.stdout, /\d+ checks, 0 failed/);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});
