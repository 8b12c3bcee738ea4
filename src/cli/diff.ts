type Edit = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

/** The line edits turning `a` into `b`, by longest common subsequence (files here are a few hundred lines). */
function edits(a: string[], b: string[]): Edit[] {
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: Edit[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push({ kind: ' ', line: a[i]!, a: i++, b: j++ });
    else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!))
      out.push({ kind: '-', line: a[i]!, a: i++, b: j });
    else out.push({ kind: '+', line: b[j]!, a: i, b: j++ });
  }
  return out;
}

/** A unified diff of two texts (empty when they are equal), as `diff -u` would print it. */
export function unifiedDiff(before: string, after: string, names: [string, string], context = 3): string {
  if (before === after) return '';
  const all = edits(before.split('\n'), after.split('\n'));
  const changed = all.map((e, k) => (e.kind === ' ' ? -1 : k)).filter((k) => k >= 0);
  const lines = [`--- ${names[0]}`, `+++ ${names[1]}`];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = Math.min(all.length, changed[k]! + context + 1);
    while (k + 1 < changed.length && changed[k + 1]! - context <= end) {
      k++;
      end = Math.min(all.length, changed[k]! + context + 1);
    }
    k++;
    const hunk = all.slice(start, end);
    const aCount = hunk.filter((e) => e.kind !== '+').length;
    const bCount = hunk.filter((e) => e.kind !== '-').length;
    const aStart = hunk[0]!.a + (aCount > 0 ? 1 : 0);
    const bStart = hunk[0]!.b + (bCount > 0 ? 1 : 0);
    lines.push(`@@ -${aStart},${aCount} +${bStart},${bCount} @@`);
    for (const e of hunk) lines.push(`${e.kind}${e.line}`);
  }
  return `${lines.join('\n')}\n`;
}
