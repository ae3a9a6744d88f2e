/** Shared by the tests that need root and the netns lab. */
import { randomBytes } from 'node:crypto';

/** A skip reason when the lab cannot run here (printed once), else false. */
export const labSkip: string | false = process.getuid?.() === 0 ? false : 'needs root: the lab creates network namespaces, Unix users and runs smbd';
if (labSkip) console.log(`# lab tests skipped: ${labSkip}`);

/** A lab name no other test file or developer lab uses (namespaces are <name>-<role>). */
export const uniqueLabName = (): string => `dt${randomBytes(2).toString('hex')}`;

export const ALICE = 'dsralice%Alice-Pass-1';
export const BOB = 'dsrbob%Bob-Pass-2';
