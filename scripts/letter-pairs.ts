/**
 * Writes src/letterPairs.ts, the letter-pair table of the secret check's model of text a person
 * types: `npx tsx scripts/letter-pairs.ts > src/letterPairs.ts`, then `npx biome format --write
 * src/letterPairs.ts`.
 *
 * It counts, over the English common-word list that ships with @zxcvbn-ts/language-en (ranked by
 * frequency, each word weighted 1/rank as in running text), which letter begins a word and which
 * letter follows which inside a word. Each count is stored as -log2 of its share of its row, in
 * half bits, one character a cell: the table is 27 rows (a word's start, then a–z) of 26 cells.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { dictionary } = require('@zxcvbn-ts/language-en') as { dictionary: Record<string, string[]> };

/** The 64 characters a cell is written with, from 0 (cost 0 bits) to 63 (31.5 bits or more). */
export const CELL_DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_';
/** Each cell's share of its row is at least this much of the row's total: a pair never seen stays possible. */
const FLOOR = 0.002;

const LETTERS = 26;
const counts = Array.from({ length: LETTERS + 1 }, () => new Float64Array(LETTERS));
const words = dictionary['commonWords-en']!;
words.forEach((entry, rank) => {
  const weight = 1 / (rank + 1);
  for (const word of entry.toLowerCase().split(/[^a-z]+/)) {
    if (word.length === 0) continue;
    counts[0]![word.charCodeAt(0) - 97]! += weight;
    for (let i = 1; i < word.length; i++) {
      counts[word.charCodeAt(i - 1) - 96]![word.charCodeAt(i) - 97]! += weight;
    }
  }
});

const rows = counts.map((row) => {
  const total = row.reduce((sum, count) => sum + count, 0);
  const floored = [...row].map((count) => count + total * FLOOR);
  const flooredTotal = floored.reduce((sum, count) => sum + count, 0);
  return floored
    .map((count) => {
      const halfBits = Math.round(-2 * Math.log2(count / flooredTotal));
      return CELL_DIGITS[Math.min(63, halfBits)];
    })
    .join('');
});

const lines = [
  '// Written by scripts/letter-pairs.ts from the English common words of @zxcvbn-ts/language-en; do not edit.',
  '',
  '/** The characters a cell is written with: a cell is -log2 of its share of its row, in half bits. */',
  `export const CELL_DIGITS = '${CELL_DIGITS}';`,
  '',
  '/** Row 0: the letter a word begins with; row 1 + (letter - a): the letter that follows it in a word. */',
  'export const LETTER_PAIRS: readonly string[] = [',
  ...rows.map((row, i) => `  '${row}', // ${i === 0 ? 'start' : String.fromCharCode(96 + i)}`),
  '];',
  '',
];
process.stdout.write(lines.join('\n'));
