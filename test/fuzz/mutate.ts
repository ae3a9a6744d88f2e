/**
 * A small libFuzzer-style mutation engine (no coverage feedback): the targets are Jazzer.js
 * shaped (`(data: Buffer) => void`), so they also run under Jazzer.js where its native
 * fuzzer loads (its prebuilt 4.0.0 binary needs glibc 2.38; Debian 12 has 2.36).
 */

/** A seeded PRNG (mulberry32), so a failing run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x40, 0x08, 0x10];
const INTERESTING_16 = [0x0000, 0xffff, 0x7fff, 0x8000, 0x0040, 0x0048, 0x0078, 0x1000];
const INTERESTING_32 = [0x00000000, 0xffffffff, 0x7fffffff, 0x80000000, 0x00010000, 0x01000000];

/** One random mutation of `input` (bit flip, interesting values, insert, delete, truncate, splice). */
export function mutate(input: Buffer, rand: () => number, other?: Buffer): Buffer {
  const b = Buffer.from(input);
  const pick = (n: number) => Math.floor(rand() * n);
  const at = () => pick(Math.max(b.length, 1));
  switch (pick(9)) {
    case 0:
      if (b.length) b[at()]! ^= 1 << pick(8);
      return b;
    case 1:
      if (b.length) b[at()] = INTERESTING[pick(INTERESTING.length)]!;
      return b;
    case 2:
      if (b.length >= 2) b.writeUInt16LE(INTERESTING_16[pick(INTERESTING_16.length)]!, pick(b.length - 1));
      return b;
    case 3:
      if (b.length >= 4) b.writeUInt32LE(INTERESTING_32[pick(INTERESTING_32.length)]!, pick(b.length - 3));
      return b;
    case 4: {
      const i = at();
      const ins = Buffer.alloc(1 + pick(16));
      for (let k = 0; k < ins.length; k++) ins[k] = pick(256);
      return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
    }
    case 5: {
      const i = at();
      return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + pick(16))]);
    }
    case 6:
      return b.subarray(0, at());
    case 7:
      if (b.length) b[at()] = pick(256);
      return b;
    default: {
      if (!other || other.length === 0) return b;
      const i = at();
      const j = pick(other.length);
      return Buffer.concat([b.subarray(0, i), other.subarray(j, j + 1 + pick(64))]);
    }
  }
}

export interface FuzzResult {
  runs: number;
  failure?: { input: Buffer; error: unknown };
}

/**
 * Runs `target` on `runs` inputs derived from `seeds` by stacked mutations. Stops at the first
 * input that makes the target throw.
 */
export function fuzz(target: (data: Buffer) => void, seeds: Buffer[], runs: number, seed = 1): FuzzResult {
  const rand = rng(seed);
  const corpus = seeds.length ? seeds : [Buffer.alloc(0)];
  for (let i = 0; i < runs; i++) {
    let input = corpus[Math.floor(rand() * corpus.length)]!;
    const depth = 1 + Math.floor(rand() * 4);
    for (let d = 0; d < depth; d++) input = mutate(input, rand, corpus[Math.floor(rand() * corpus.length)]);
    try {
      target(input);
    } catch (error) {
      return { runs: i + 1, failure: { input, error } };
    }
  }
  return { runs };
}
