/** Output helpers shared by the CLI verbs: `--json` prints JSON, otherwise an aligned table. */

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Prints rows as a table with the given columns (header row first). */
export function printTable(rows: Record<string, unknown>[], columns: [key: string, title: string][]): void {
  process.stdout.write(formatTable(rows, columns));
}

/** The text of printTable: aligned columns, one line per row, `(none)` for no rows. */
export function formatTable(rows: Record<string, unknown>[], columns: [key: string, title: string][]): string {
  const cells = rows.map((r) => columns.map(([k]) => formatCell(r[k])));
  const widths = columns.map(([, title], i) => Math.max(title.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((s, i) => s.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  return line(columns.map(([, t]) => t)) + cells.map(line).join('') + (rows.length === 0 ? '(none)\n' : '');
}

function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.every((x) => typeof x !== 'object' || x === null) ? v.join(',') : String(v.length);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
