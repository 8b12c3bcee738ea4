import { createRequire } from 'node:module';
import type { ZxcvbnFactory, ZxcvbnResult } from '@zxcvbn-ts/core';
import { uuidsIn } from './formats.js';
import { CELL_DIGITS, LETTER_PAIRS } from './letterPairs.js';

/** The `.env.sample` placeholder: a deployment that still carries it has not set a secret. */
export const SECRET_PLACEHOLDER = 'change-me-to-a-random-string-of-at-least-32-characters';
/**
 * What a shared secret must be worth: out of reach of any guessing, online or offline. Its length
 * does not matter, its bits do. 112 is NIST's least security strength for an HMAC key (SP 800-131A,
 * SP 800-57): 2^112 HMACs of a captured signed request are some 250,000 years of every Bitcoin
 * miner's hashing. It takes a UUIDv4 (122 random bits, the cron secret many schedulers already
 * hold) and 16 random bytes in any encoding (`secrets.token_urlsafe(16)`, 22 characters), and
 * refuses 12 bytes (96) and a UUIDv7 (74).
 */
export const MIN_SECRET_BITS = 112;
export const HOW_TO_MAKE_ONE = 'make one with: openssl rand -hex 32';
/**
 * The signing keys the @upstash/qstash SDK publishes for its local development server: anyone can
 * sign with them.
 */
export const QSTASH_DEVELOPMENT_KEYS: readonly string[] = [
  'sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r',
  'sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs',
];

/**
 * Why a secret would be weak, or null. Three steps, cheapest first:
 *
 * 1. The `.env.sample` placeholder in any spelling (case, separators, a few characters added,
 *    dropped or changed) is refused.
 * 2. A secret that looks like a generator's output (see `generatorOutput`) is worth its nominal
 *    bits: length times log2 of its alphabet, 122 bits a random UUID. It is accepted with at least
 *    `minBits` and refused, with its bits, below. This path never loads the guessing model, so a
 *    random secret costs microseconds at start-up.
 * 3. Anything else is scored by zxcvbn (dictionaries, keyboard patterns, sequences, repeats,
 *    dates, l33t) and accepted when guessing it takes at least 2^minBits guesses.
 */
export function secretWeakness(secret: string, minBits: number): string | null {
  if (isPlaceholder(secret)) {
    return `is the .env.sample placeholder or a spelling of it: set a random secret (${HOW_TO_MAKE_ONE})`;
  }
  const random = generatorOutput(secret);
  if (random) {
    if (random.bits >= minBits) return null;
    return `is too easy to guess: ${random.what} about ${Math.floor(random.bits)} random bits, ${minBits} needed (${random.uuids ? 'join two UUIDv4s, or ' : ''}${HOW_TO_MAKE_ONE})`;
  }
  const guessed = guessability(secret);
  if (guessed.log10Guesses >= minBits * Math.log10(2)) return null;
  const bits = Math.floor(guessed.log10Guesses / Math.log10(2));
  const found = guessed.found.length > 0 ? `${joinWords(guessed.found)}, ` : '';
  return `is too easy to guess: ${found}guessed in about 2^${bits} tries, 2^${minBits} needed (${HOW_TO_MAKE_ONE})`;
}

/**
 * Why a QStash signing key would be weak, or null. Upstash makes them as `sig_` and about 28
 * random base58 characters; the SDK's published development keys are refused, and the rest of a
 * key must be worth `minBits` like any token.
 */
export function qstashKeyWeakness(key: string, minBits: number): string | null {
  if (QSTASH_DEVELOPMENT_KEYS.includes(key)) {
    return "is a development key the QStash SDK publishes: copy the project's own key from the Upstash console (QStash, Signing keys)";
  }
  return secretWeakness(key.startsWith('sig_') ? key.slice(4) : key, minBits);
}

/**
 * Whether a word looks like a generator's output worth at least `minBits` (see generatorOutput):
 * a token, a key, an id made to be unguessable. Never loads the guessing model.
 */
export function isRandomToken(word: string, minBits: number): boolean {
  const random = generatorOutput(word);
  return random !== null && random.bits >= minBits;
}

// --- 1. The placeholder ---------------------------------------------------------------------------

const normalise = (text: string) => text.toLowerCase().replace(/[^a-z0-9]/g, '');
const PLACEHOLDER_CORE = normalise(SECRET_PLACEHOLDER);
/** A run this long shared with the placeholder is a copy of it, not chance. */
const PLACEHOLDER_SHARED_RUN = 10;
/** Edits (added, dropped or changed characters) that still leave the placeholder. */
const PLACEHOLDER_EDITS = 11;

function isPlaceholder(secret: string): boolean {
  const text = normalise(secret);
  if (text.includes('changeme')) return true;
  for (let i = 0; i + PLACEHOLDER_SHARED_RUN <= PLACEHOLDER_CORE.length; i++) {
    if (text.includes(PLACEHOLDER_CORE.slice(i, i + PLACEHOLDER_SHARED_RUN))) return true;
  }
  return editDistance(text, PLACEHOLDER_CORE, PLACEHOLDER_EDITS) <= PLACEHOLDER_EDITS;
}

/** Levenshtein distance of a and b, or limit + 1 as soon as it is known to exceed limit. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const value = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > limit) return limit + 1;
    previous = current;
  }
  return previous[b.length]!;
}

// --- 2. Generator output --------------------------------------------------------------------------

/**
 * The chance, for each test below, that a truly random string of the alphabet fails it. A random
 * secret that fails one goes on to zxcvbn, which scores a random string of fewer than about 39
 * characters under 2^128 (it prices an unknown character at 10 guesses): such a failure refuses
 * a good secret, so each test must fail one random secret in a million at most.
 */
const FALSE_FAIL = 1e-6;

type CharClass = 'digit' | 'lower' | 'upper' | 'symbol';

interface Alphabet {
  /** How the refusal names it: "32 characters of 0-9 hold". */
  name: string;
  fits: RegExp;
  size: number;
  /** How many of its characters are of each class. */
  classes: Partial<Record<CharClass, number>>;
  /** Its characters, for the keyboard test. */
  chars: string;
  /** Whether trailing '=' are padding (not counted). */
  padded?: boolean;
}

const DIGITS = '0123456789';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = LOWER.toUpperCase();
const PRINTABLE = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('');
const SYMBOLS = [...PRINTABLE].filter((c) => !/[0-9A-Za-z]/.test(c)).join('');

/** Smallest first: a secret is judged by the smallest alphabet it fits. */
const ALPHABETS: readonly Alphabet[] = [
  { name: '0-9', fits: /^[0-9]+$/, size: 10, classes: { digit: 10 }, chars: DIGITS },
  {
    name: 'hexadecimal',
    fits: /^[0-9a-f]+$/,
    size: 16,
    classes: { digit: 10, lower: 6 },
    chars: DIGITS + 'abcdef',
  },
  {
    name: 'hexadecimal',
    fits: /^[0-9A-F]+$/,
    size: 16,
    classes: { digit: 10, upper: 6 },
    chars: DIGITS + 'ABCDEF',
  },
  {
    name: 'letters and digits',
    fits: /^[0-9A-Za-z]+$/,
    size: 62,
    classes: { digit: 10, lower: 26, upper: 26 },
    chars: DIGITS + LOWER + UPPER,
  },
  {
    name: 'base64',
    fits: /^[0-9A-Za-z+/]+={0,2}$/,
    size: 64,
    classes: { digit: 10, lower: 26, upper: 26, symbol: 2 },
    chars: `${DIGITS}${LOWER}${UPPER}+/`,
    padded: true,
  },
  {
    name: 'base64url',
    fits: /^[0-9A-Za-z_-]+={0,2}$/,
    size: 64,
    classes: { digit: 10, lower: 26, upper: 26, symbol: 2 },
    chars: `${DIGITS}${LOWER}${UPPER}-_`,
    padded: true,
  },
  {
    name: 'printable ASCII',
    fits: /^[!-~]+$/,
    size: 94,
    classes: { digit: 10, lower: 26, upper: 26, symbol: 32 },
    chars: PRINTABLE,
  },
];

const HEX_LOWER = ALPHABETS[1]!;

interface GeneratorOutput {
  /** What the secret is worth if it was drawn at random: length × log2(alphabet), or the UUIDs' random bits. */
  bits: number;
  /** How a refusal describes it: "one UUIDv4 holds", "36 characters of 0-9 hold". */
  what: string;
  uuids: boolean;
}

/**
 * Whether the secret looks like the output of a random generator (openssl rand, crypto.randomBytes,
 * a password manager, UUIDv4): it fits an alphabet of 10 to 94 characters, or is one or more
 * UUIDs, and passes tests that random strings of that alphabet and length fail at most once in a
 * million each: how many characters of each kind, the longest run of constant step ("abcdef",
 * "aaaa", "9876"), the longest run along a keyboard row ("qwerty"), a repeated substring, how
 * many different characters, and how much likelier it is as text a person types than as random
 * output. Null when it does not look random: then only zxcvbn can say what it is worth.
 */
function generatorOutput(secret: string): GeneratorOutput | null {
  const uuids = uuidParts(secret);
  if (uuids) {
    const random = uuids.map(uuidRandomness);
    if (random.some((part) => part === null)) return null;
    const nibbles = random.map((part) => part!.nibbles).join('');
    if (nibbles.length > 0 && !looksRandom(nibbles, HEX_LOWER)) return null;
    const bits = random.reduce((sum, part) => sum + part!.bits, 0);
    const versions = [...new Set(uuids.map((uuid) => `UUIDv${uuid[14]}`))].join(' and ');
    const made = random.every((part) => part!.bits === 0) ? ', made from a clock, a name or an address,' : '';
    return {
      bits,
      what: uuids.length === 1 ? `one ${versions}${made} holds` : `${uuids.length} ${versions}s${made} hold`,
      uuids: true,
    };
  }
  const alphabet = ALPHABETS.find((candidate) => candidate.fits.test(secret));
  if (!alphabet) return null;
  const body = alphabet.padded ? secret.replace(/=+$/, '') : secret;
  if (!looksRandom(body, alphabet)) return null;
  const padding = secret.length - body.length;
  // Padded base64 ends with a partial group: it holds whole bytes.
  const bits = padding > 0 ? Math.floor((body.length * 6) / 8) * 8 : body.length * Math.log2(alphabet.size);
  return { bits, what: `${body.length} characters of ${alphabet.name} hold`, uuids: false };
}

/** The UUIDs (lower case) a secret is made of, joined by nothing or one separator, or null. */
function uuidParts(secret: string): string[] | null {
  const found = [...uuidsIn(secret)];
  if (found.length === 0) return null;
  const gaps: string[] = [];
  let at = 0;
  for (const match of found) {
    gaps.push(secret.slice(at, match.index));
    at = match.index + match[0].length;
  }
  if (gaps[0] !== '' || at !== secret.length) return null;
  const separators = new Set(gaps.slice(1));
  if (separators.size > 1) return null;
  const separator = [...separators][0] ?? '';
  if (separator.length > 1 || /[0-9a-z]/i.test(separator)) return null;
  const parts = found.map((match) => match[0]);
  if (new Set(parts.map((part) => part === part.toLowerCase())).size > 1) return null;
  return parts.map((part) => part.toLowerCase());
}

/**
 * A UUID's random bits and the hex digits that carry them: a version 4 has 122 in all its digits
 * but the version and the variant, a version 7 has 74 after its 48-bit timestamp, and versions 1,
 * 2, 3, 5 and 6 none (a clock, a name's hash, a node's address), nor the nil UUID. Null for
 * anything else (version 8, or a variant not RFC 9562's): nothing is known of its bits.
 */
function uuidRandomness(uuid: string): { bits: number; nibbles: string } | null {
  const hex = uuid.replaceAll('-', '');
  if (/^0+$/.test(hex)) return { bits: 0, nibbles: '' };
  if (!/[89ab]/.test(hex[16]!)) return null;
  const version = hex[12]!;
  if (version === '4') return { bits: 122, nibbles: hex.slice(0, 12) + hex.slice(13, 16) + hex.slice(17) };
  if (version === '7') return { bits: 74, nibbles: hex.slice(13, 16) + hex.slice(17) };
  if ('12356'.includes(version)) return { bits: 0, nibbles: '' };
  return null;
}

function looksRandom(text: string, alphabet: Alphabet): boolean {
  const n = text.length;
  const k = alphabet.size;
  if (n < 16) return false;
  return (
    classCountsFit(text, alphabet) &&
    longestConstantStep(text) < stepRunLimit(n, k) &&
    longestKeyboardRun(text) < keyboardRunLimit(n, alphabet) &&
    !repeatsSubstring(text, repeatLimit(n, k)) &&
    new Set(text).size > distinctFloor(n, k) &&
    humanTextBits(text, k) < Math.log2(1 / FALSE_FAIL)
  );
}

function charClass(char: string): CharClass {
  if (char >= '0' && char <= '9') return 'digit';
  if (char >= 'a' && char <= 'z') return 'lower';
  if (char >= 'A' && char <= 'Z') return 'upper';
  return 'symbol';
}

/** Each class's count lies within both binomial tails (the classes share the false-fail budget). */
function classCountsFit(text: string, alphabet: Alphabet): boolean {
  const entries = Object.entries(alphabet.classes) as [CharClass, number][];
  if (entries.length < 2) return true;
  const counts: Partial<Record<CharClass, number>> = {};
  for (const char of text) counts[charClass(char)] = (counts[charClass(char)] ?? 0) + 1;
  const limit = FALSE_FAIL / (2 * entries.length);
  return entries.every(([name, size]) => {
    const count = counts[name] ?? 0;
    const p = size / alphabet.size;
    return (
      binomialTail(text.length, p, 0, count) >= limit &&
      binomialTail(text.length, p, count, text.length) >= limit
    );
  });
}

const logFactorials: number[] = [0];
function logFactorial(n: number): number {
  for (let i = logFactorials.length; i <= n; i++) logFactorials.push(logFactorials[i - 1]! + Math.log(i));
  return logFactorials[n]!;
}

/** P(from ≤ X ≤ to) for X ~ Binomial(n, p). */
function binomialTail(n: number, p: number, from: number, to: number): number {
  let sum = 0;
  for (let x = from; x <= to; x++) {
    sum += Math.exp(
      logFactorial(n) - logFactorial(x) - logFactorial(n - x) + x * Math.log(p) + (n - x) * Math.log1p(-p),
    );
  }
  return sum;
}

/** Constant steps are looked for between neighbours and between every second and third character ("a1b2c3"). */
const STEP_LAGS = [1, 2, 3];

/**
 * Characters in the longest run whose char codes step by -1, 0 or +1 throughout, counting every
 * lag-th character.
 */
function longestConstantStep(text: string): number {
  let longest = 1;
  for (const lag of STEP_LAGS) {
    for (let offset = 0; offset < lag; offset++) {
      let run = 1;
      let previousStep = Number.NaN;
      for (let i = offset + lag; i < text.length; i += lag) {
        const step = text.charCodeAt(i) - text.charCodeAt(i - lag);
        run = Math.abs(step) > 1 ? 1 : step === previousStep ? run + 1 : 2;
        previousStep = step;
        longest = Math.max(longest, run);
      }
    }
  }
  return longest;
}

/**
 * The shortest run of constant step that 3 steps × the lags × n starts × k^-(L-1) make rarer
 * than FALSE_FAIL.
 */
function stepRunLimit(n: number, k: number): number {
  let length = 2;
  while (3 * STEP_LAGS.length * n * k ** -(length - 1) >= FALSE_FAIL) length++;
  return length;
}

const KEYBOARD_ROWS = [
  ['`1234567890-=', '~!@#$%^&*()_+'],
  ['qwertyuiop[]\\', 'QWERTYUIOP{}|'],
  ["asdfghjkl;'", 'ASDFGHJKL:"'],
  ['zxcvbnm,./', 'ZXCVBNM<>?'],
];
const KEY_PLACES = new Map<string, [number, number]>();
for (const [row, layers] of KEYBOARD_ROWS.entries()) {
  for (const layer of layers) {
    for (const [column, char] of [...layer].entries()) KEY_PLACES.set(char, [row, column]);
  }
}

/** Side by side on a QWERTY keyboard's row, shifted or not. */
function keysAdjacent(a: string, b: string): boolean {
  const p = KEY_PLACES.get(a);
  const q = KEY_PLACES.get(b);
  return p !== undefined && q !== undefined && p[0] === q[0] && Math.abs(p[1] - q[1]) === 1;
}

/** Characters in the longest run each of which is beside the one before on a keyboard row. */
function longestKeyboardRun(text: string): number {
  let longest = 1;
  let run = 1;
  for (let i = 1; i < text.length; i++) {
    run = keysAdjacent(text[i - 1]!, text[i]!) ? run + 1 : 1;
    longest = Math.max(longest, run);
  }
  return longest;
}

const keyboardLimits = new Map<string, number>();
/** The shortest keyboard run that n starts × p^(L-1) make rarer than FALSE_FAIL, p the most neighbours. */
function keyboardRunLimit(n: number, alphabet: Alphabet): number {
  const key = `${alphabet.chars}:${n}`;
  const known = keyboardLimits.get(key);
  if (known !== undefined) return known;
  const chars = [...alphabet.chars];
  const neighbours = Math.max(...chars.map((a) => chars.filter((b) => keysAdjacent(a, b)).length));
  const p = neighbours / alphabet.size;
  let length = 2;
  while (n * p ** (length - 1) >= FALSE_FAIL) length++;
  keyboardLimits.set(key, length);
  return length;
}

/** The shortest substring whose repeat n²/2 pairs of starts × k^-m make rarer than FALSE_FAIL. */
function repeatLimit(n: number, k: number): number {
  let length = 1;
  while (((n * n) / 2) * k ** -length >= FALSE_FAIL) length++;
  return length;
}

function repeatsSubstring(text: string, length: number): boolean {
  const seen = new Set<string>();
  for (let i = 0; i + length <= text.length; i++) {
    const part = text.slice(i, i + length);
    if (seen.has(part)) return true;
    seen.add(part);
  }
  return false;
}

/** The most different characters that C(k, d)·(d/k)^n still makes rarer than FALSE_FAIL. */
function distinctFloor(n: number, k: number): number {
  let floor = 0;
  for (let d = 1; d < k; d++) {
    const logChoose = logFactorial(k) - logFactorial(d) - logFactorial(k - d);
    if (logChoose + n * Math.log(d / k) < Math.log(FALSE_FAIL)) floor = d;
    else break;
  }
  return floor;
}

// A model of text a person types: words (English letter pairs, from letterPairs.ts), capitals at
// their starts, digits mostly together, a few separators. It gives every string of printable ASCII
// a probability and they sum to 1, so a random string of k characters is 2^b times likelier under
// it than at random (k^-n) with probability at most 2^-b (Markov's inequality): b ≥ 20 fails one
// random secret in a million at most, and a phrase of words fails it within about 20 characters.

type Kind = 'start' | CharClass;
/** The chance of the next character's class, after each class. */
const NEXT_CLASS: Record<Kind, Record<CharClass, number>> = {
  start: { lower: 0.55, upper: 0.3, digit: 0.1, symbol: 0.05 },
  lower: { lower: 0.78, upper: 0.1, digit: 0.06, symbol: 0.06 },
  upper: { lower: 0.65, upper: 0.2, digit: 0.07, symbol: 0.08 },
  digit: { lower: 0.12, upper: 0.08, digit: 0.7, symbol: 0.1 },
  symbol: { lower: 0.6, upper: 0.2, digit: 0.15, symbol: 0.05 },
};
/** After a letter, how often the next one goes on the word rather than starting another. */
const IN_WORD = 0.8;
const COMMON_SYMBOLS: Record<string, number> = {
  '-': 0.25,
  _: 0.25,
  '.': 0.1,
  '!': 0.1,
  '@': 0.05,
  '#': 0.05,
};
const OTHER_SYMBOL =
  (1 - Object.values(COMMON_SYMBOLS).reduce((sum, p) => sum + p, 0)) /
  (SYMBOLS.length - Object.keys(COMMON_SYMBOLS).length);

/** log2 of the chance of each next letter: row 0 a word's start, row 1 + letter after that letter. */
const LETTER_LOG2: number[][] = (() => {
  const rows = LETTER_PAIRS.map((row) => {
    const weights = [...row].map((cell) => 2 ** (-CELL_DIGITS.indexOf(cell) / 2));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    return weights.map((weight) => weight / total);
  });
  const start = rows[0]!;
  return rows.map((row, i) =>
    row.map((p, letter) => Math.log2(i === 0 ? p : IN_WORD * p + (1 - IN_WORD) * start[letter]!)),
  );
})();

/** log2 of how much likelier the text is under the model of typed text than as k-ary random output. */
function humanTextBits(text: string, k: number): number {
  let bits = text.length * Math.log2(k);
  let previous: Kind = 'start';
  let letterRow = 0;
  for (const char of text) {
    const kind = charClass(char);
    bits += Math.log2(NEXT_CLASS[previous][kind]);
    if (kind === 'lower' || kind === 'upper') {
      const letter = char.toLowerCase().charCodeAt(0) - 97;
      bits += LETTER_LOG2[letterRow]![letter]!;
      letterRow = letter + 1;
    } else {
      bits += kind === 'digit' ? Math.log2(0.1) : Math.log2(COMMON_SYMBOLS[char] ?? OTHER_SYMBOL);
      letterRow = 0;
    }
    previous = kind;
  }
  return bits;
}

// --- 3. zxcvbn ------------------------------------------------------------------------------------

const require = createRequire(import.meta.url);
let model: ZxcvbnFactory | undefined;

/**
 * Whether zxcvbn and its dictionaries have been loaded (only a secret that does not look random
 * does). For test/config.test.ts, which imports it in a process of its own.
 * @public
 */
export function strengthModelLoaded(): boolean {
  return model !== undefined;
}

/** zxcvbn with the common and English dictionaries and keyboard layouts, built on first use. */
function strengthModel(): ZxcvbnFactory {
  if (model === undefined) {
    const core = require('@zxcvbn-ts/core') as typeof import('@zxcvbn-ts/core');
    const common = require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
    const english = require('@zxcvbn-ts/language-en') as typeof import('@zxcvbn-ts/language-en');
    model = new core.ZxcvbnFactory({
      dictionary: { ...common.dictionary, ...english.dictionary },
      graphs: common.adjacencyGraphs,
    });
  }
  return model;
}

const FOUND: [(match: ZxcvbnResult['sequence'][number]) => boolean, string][] = [
  [(m) => m.pattern === 'dictionary' && m.dictionaryName === 'passwords-common', 'a common password'],
  [(m) => m.pattern === 'dictionary' && /names/.test(String(m.dictionaryName)), 'names'],
  [(m) => m.pattern === 'dictionary' || m.pattern === 'wordSequence', 'dictionary words'],
  [(m) => m.pattern === 'spatial', 'a keyboard pattern'],
  [(m) => m.pattern === 'sequence', 'a sequence'],
  [(m) => m.pattern === 'repeat', 'a repeat'],
  [(m) => m.pattern === 'date' || m.pattern === 'regex', 'a date or year'],
];

/** zxcvbn's estimate and what it found, by kind (never the secret's own characters). */
function guessability(secret: string): { log10Guesses: number; found: string[] } {
  const result = strengthModel().check(secret);
  const found = new Set<string>();
  for (const match of result.sequence) {
    const kind = FOUND.find(([test]) => test(match));
    if (kind) found.add(kind[1]);
    if (match.pattern === 'dictionary' && match['l33t']) found.add('l33t substitutions');
    if (match.pattern === 'dictionary' && match['reversed']) found.add('reversed words');
  }
  return { log10Guesses: result.guessesLog10, found: [...found] };
}

function joinWords(words: string[]): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}
